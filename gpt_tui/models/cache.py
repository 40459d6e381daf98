"""The converted-model cache: where each converted model lives, whether it is there, which
source it was converted from, and removing it.

Layout under `locations.models_dir()`:

    124M/                 the converted model (`model_dir` format), renamed into place whole
    124M.checkpoint/      OpenAI's files while downloading (`*.part` until verified); removed
                          after conversion unless `keep_checkpoint`
    124M.lock             held while a process downloads or converts 124M
    local/NAME-HASH/      models converted from a checkpoint directory given by path
    hf/ORG--NAME/         models converted from the Hugging Face cache (`--model ORG/NAME`)

A converted directory only ever appears whole (one rename), so its two files being there means
it is ready (`is_converted`); the lock guards only downloading, converting and removing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from gpt_tui import locations
from gpt_tui.errors import GptTuiError
from gpt_tui.models.catalog import resolve
from gpt_tui.models.download import file_lock
from gpt_tui.models.model_dir import HPARAMS_FILE, WEIGHTS_FILE

SOURCE_FILE = "source.json"  # in a model converted from a path: which checkpoint it came from


def model_path(name: str) -> Path:
    """Where the converted catalog model `name` lives (whether or not it is there yet)."""
    return locations.models_dir() / resolve(name).name


def checkpoint_path(name: str) -> Path:
    """Where OpenAI's files for `name` are downloaded to (and kept with `keep_checkpoint`)."""
    return locations.models_dir() / f"{resolve(name).name}.checkpoint"


def hf_model_path(repo_id: str) -> Path:
    """Where the converted copy of Hugging Face repo `repo_id` lives."""
    org, name = repo_id.split("/")
    return locations.models_dir() / "hf" / f"{org}--{name}"


def local_model_path(source: Path) -> Path:
    """Where a model converted from a file or directory given by path lives: `local/NAME-HASH/`,
    the hash of its absolute path telling same-named sources apart."""
    source = source.resolve()
    digest = hashlib.sha1(str(source).encode()).hexdigest()[:12]
    name = source.stem if source.is_file() else source.name
    return locations.models_dir() / "local" / f"{name}-{digest}"


def is_converted(path: Path) -> bool:
    return (path / HPARAMS_FILE).is_file() and (path / WEIGHTS_FILE).is_file()


def same_source(target: Path, source: dict[str, Any]) -> bool:
    """`target` holds a conversion of `source` (as its `source.json` records)."""
    try:
        return is_converted(target) and json.loads((target / SOURCE_FILE).read_text()) == source
    except (OSError, ValueError):
        return False


def remove_model(name: str) -> int:
    """Delete model `name` from the cache (converted files, checkpoint, unfinished downloads);
    returns the bytes freed (0 when there was nothing)."""
    spec = resolve(name)
    if spec.bundled:
        raise GptTuiError(f"{spec.name} is bundled with gpt-tui and cannot be removed")
    root = locations.models_dir()
    doomed = [root / spec.name, checkpoint_path(spec.name), *root.glob(f".{spec.name}.*.tmp")]
    doomed = [p for p in doomed if p.exists()]
    if not doomed:
        return 0
    freed = sum(_tree_size(p) for p in doomed)
    with file_lock(root / f"{spec.name}.lock", wait=False):
        for p in doomed:
            remove_tree(p)
    return freed


def remove_hf_conversion(repo_id: str) -> int:
    """Delete gpt-tui's converted copy of a Hugging Face repo (never the Hugging Face cache,
    which other tools share); returns the bytes freed."""
    return _remove_conversion(hf_model_path(repo_id))


def remove_local_conversion(source: Path) -> int:
    """Delete gpt-tui's converted copy of a file given by path or found in another tool's store
    (never the file itself); returns the bytes freed."""
    return _remove_conversion(local_model_path(source))


def _remove_conversion(target: Path) -> int:
    if not target.exists():
        return 0
    freed = _tree_size(target)
    with file_lock(target.with_name(f"{target.name}.lock"), wait=False):
        remove_tree(target)
    return freed


def remove_tree(path: Path) -> None:
    """Delete a file or directory; a failure is a StorageError naming it."""
    try:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    except OSError as exc:
        raise locations.storage_error(path, exc) from exc


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
