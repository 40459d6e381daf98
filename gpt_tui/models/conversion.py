"""Getting a model into the converted cache, once: from a GGUF file, a directory of OpenAI's
TensorFlow checkpoint, a Hugging Face model directory, or (a catalog model) downloaded first.

Every conversion runs under the model's lock (`<target>.lock`): a second process waits, then
finds the work done. A model converted from a path records its source (the files' path, sizes
and times) in `source.json`, so a changed source is converted again and an unchanged one never.
Loading is `loading.py`'s; where things live is `cache.py`'s.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpt_tui import locations
from gpt_tui.display import human_bytes
from gpt_tui.errors import GptTuiError, ModelFileError
from gpt_tui.models import gguf_file, tf_checkpoint
from gpt_tui.models.cache import (
    SOURCE_FILE,
    checkpoint_path,
    is_converted,
    local_model_path,
    model_path,
    remove_tree,
    same_source,
)
from gpt_tui.models.catalog import DEFAULT_GPT2_URL, GPT2_FILES, ModelSpec, resolve
from gpt_tui.models.download import (
    DownloadCancelled,
    DownloadProgress,
    ProgressCallback,
    download_files,
    file_lock,
)
from gpt_tui.models.gguf_header import read_header
from gpt_tui.models.hf import convert as hf_convert
from gpt_tui.models.hf import hub
from gpt_tui.models.hf.checkpoint import hparams_of, is_complete, open_checkpoint
from gpt_tui.models.hf.hub_cache import cached_snapshot
from gpt_tui.models.hf.safetensors import read_header as read_st_header
from gpt_tui.models.memory import CONVERSION_FACTOR, check_fits
from gpt_tui.models.model_dir import LAYOUT

GPT2_URL_ENV = "GPT_TUI_GPT2_URL"
GPT2_SOURCE_ENV = "GPT_TUI_GPT2_SOURCE"  # "openai" (TensorFlow files) or "hub" (safetensors)


# --- from a path: a GGUF file, a TensorFlow checkpoint, a Hugging Face directory ----------------


def convert_gguf(
    gguf_path: Path,
    target: Path,
    name: str,
    *,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
    force: bool = False,
) -> None:
    """A GGUF file dequantized into `target`, unless it already holds this version of the file
    (its path, size and time: a new package's file is converted again); `force` converts again
    whatever it holds."""
    stat = gguf_path.stat()
    source = {
        "layout": LAYOUT,
        "path": str(gguf_path),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
    }
    if not force and same_source(target, source):
        return
    # Refused before anything is allocated: a file that lies about its tensors, or a model
    # whose conversion would not fit in memory.
    f32_bytes = 4 * read_header(gguf_path).n_params
    check_fits(
        f"converting {name}",
        CONVERSION_FACTOR * f32_bytes,
        f"{human_bytes(f32_bytes)} of weights, held up to {CONVERSION_FACTOR} times over while "
        "converting",
    )

    def convert(extra_files: dict[str, bytes]) -> None:
        reports = _convert_progress(progress, name, gguf_path.name, cancel)
        gguf_file.convert_gguf(gguf_path, target, extra_files=extra_files, progress=reports)

    _convert_once(target, source, name, convert, progress=progress, cancel=cancel, force=force)


def convert_tf_checkpoint(
    checkpoint_dir: Path, *, progress: ProgressCallback | None, cancel: threading.Event | None
) -> Path:
    """Convert a checkpoint directory the user gave by path into the cache, once per version of
    its files (their sizes and times are remembered in `source.json`)."""
    checkpoint_dir = checkpoint_dir.resolve()
    prefix = tf_checkpoint.checkpoint_prefix(checkpoint_dir)
    files = [
        p
        for p in sorted(checkpoint_dir.iterdir())
        if p.name.startswith(prefix.name) or p.name in ("hparams.json", "encoder.json")
    ]
    source = _directory_source(checkpoint_dir, files)
    target = local_model_path(checkpoint_dir)
    if same_source(target, source):
        return target
    label = str(checkpoint_dir)

    def convert(extra_files: dict[str, bytes]) -> None:
        reports = _convert_progress(progress, label, prefix.name, cancel)
        tf_checkpoint.convert_checkpoint(
            checkpoint_dir, target, extra_files=extra_files, progress=reports
        )

    _convert_once(target, source, label, convert, progress=progress, cancel=cancel)
    return target


def convert_hf_dir(
    source_dir: Path,
    target: Path,
    label: str,
    *,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> None:
    """A Hugging Face model directory, converted into `target` unless it already holds this
    version of the files (their sizes and times, in `source.json`)."""
    source_dir = source_dir.resolve()
    checkpoint = open_checkpoint(source_dir, label)  # refuses at once what cannot run
    files = sorted({*checkpoint.weights, source_dir / "config.json", source_dir / "tokenizer.json"})
    source = _directory_source(source_dir, files)
    if same_source(target, source):
        return
    # hf/convert.py's peak: the float32 weights, plus one shard while it is read.
    f32_bytes = 4 * sum(t.n_elements for file in checkpoint.weights for t in read_st_header(file))
    shard = max(file.stat().st_size for file in checkpoint.weights)
    check_fits(f"converting {label}", f32_bytes + shard, "its weights, plus a shard as it is read")

    def convert(extra_files: dict[str, bytes]) -> None:
        reports = _convert_progress(progress, label, checkpoint.weights[0].name, cancel)
        hf_convert.convert_checkpoint(
            checkpoint, target, label=label, extra_files=extra_files, progress=reports
        )

    _convert_once(target, source, label, convert, progress=progress, cancel=cancel)


def _directory_source(directory: Path, files: list[Path]) -> dict[str, Any]:
    """What a conversion from `directory` is of (its `source.json`): the path, and each file's
    size and time, so that a changed file is converted again."""
    return {
        "layout": LAYOUT,
        "path": str(directory),
        "files": {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in files},
    }


def _convert_once(
    target: Path,
    source: dict[str, Any],
    label: str,
    convert: Callable[[dict[str, bytes]], None],
    *,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
    force: bool = False,
) -> None:
    """`convert(extra_files)` into `target`, under the model's lock, unless `target` already
    holds a conversion of `source` (a second process waits, then finds it done; `force`
    converts again whatever it holds). `source` is written with it, as `source.json`; a full or
    unwritable disk is one clear error."""
    root = target.parent
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise locations.storage_error(root, exc) from exc
    locations.ensure_writable(root)
    with file_lock(root / f"{target.name}.lock", cancel=cancel, on_wait=_waiting(progress, label)):
        if not force and same_source(target, source):
            return
        try:
            convert({SOURCE_FILE: json.dumps(source, indent=2).encode()})
        except OSError as exc:
            raise locations.storage_error(root, exc) from exc
    if progress is not None:
        progress(DownloadProgress(label, target.name, 1, 1, 1, 1, 0.0, phase="done"))


# --- catalog models: downloaded, then converted ---------------------------------------------------


def ensure_model(
    name: str,
    *,
    base_url: str | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    force: bool = False,
    keep_checkpoint: bool = False,
) -> Path:
    """The converted directory of catalog model `name`, downloading and converting it first when
    it is not cached (or when `force`: then everything is fetched again, and the old copy stays
    in use until the new one is complete)."""
    spec = resolve(name)
    if spec.bundled:
        raise GptTuiError(f"{spec.name} is bundled with gpt-tui; there is nothing to download")
    target = model_path(spec.name)
    if not force and is_converted(target):
        return target
    root = locations.ensure_writable(locations.models_dir())
    with file_lock(
        root / f"{spec.name}.lock", cancel=cancel, on_wait=_waiting(progress, spec.name)
    ):
        if not force and is_converted(target):
            return target  # another process got it ready while we waited
        _download_and_convert(spec, target, base_url, progress, cancel, force, keep_checkpoint)
    if progress is not None:
        progress(DownloadProgress(spec.name, target.name, 1, 1, 1, 1, 0.0, phase="done"))
    return target


def _download_and_convert(
    spec: ModelSpec,
    target: Path,
    base_url: str | None,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
    force: bool,
    keep_checkpoint: bool,
) -> None:
    if gpt2_source(spec, base_url) == "hub":
        _convert_from_hub(spec, target, progress, cancel)
        return
    base = (base_url or os.environ.get(GPT2_URL_ENV) or DEFAULT_GPT2_URL).rstrip("/")
    checkpoint_dir = checkpoint_path(spec.name)
    if force:
        remove_tree(checkpoint_dir)
    try:
        checkpoint_dir.mkdir(exist_ok=True)
    except OSError as exc:
        raise locations.storage_error(checkpoint_dir, exc) from exc
    try:
        download_files(
            f"{base}/{spec.name}",
            GPT2_FILES,
            checkpoint_dir,
            model=spec.name,
            progress=progress,
            cancel=cancel,
        )
    except BaseException:
        if not any(checkpoint_dir.iterdir()):
            checkpoint_dir.rmdir()  # nothing to resume: leave no "partial" model behind
        raise
    try:
        tf_checkpoint.convert_checkpoint(
            checkpoint_dir,
            target,
            progress=_convert_progress(progress, spec.name, GPT2_FILES[-1], cancel),
        )
    except ModelFileError as exc:
        # Converting these files again cannot succeed: only fetching them again can.
        remove_tree(checkpoint_dir)
        raise ModelFileError(
            f"the checkpoint of {spec.name} from {base} cannot be converted: {exc}; "
            f"the downloaded files were deleted, `gpt-tui download {spec.name}` fetches them again"
        ) from exc
    except OSError as exc:
        raise locations.storage_error(target.parent, exc) from exc
    if not keep_checkpoint:
        remove_tree(checkpoint_dir)


def gpt2_source(spec: ModelSpec, base_url: str | None = None) -> str:
    """Where a GPT-2 size comes from: "openai" (TensorFlow checkpoints, converted with
    tensorflow) or "hub" (the same weights as safetensors, no tensorflow needed).

    `GPT_TUI_GPT2_SOURCE` decides when set; an OpenAI URL (argument or `GPT_TUI_GPT2_URL`)
    means OpenAI; a copy complete in the Hugging Face cache means the Hub (nothing to fetch);
    otherwise OpenAI when tensorflow is installed, else the Hub.
    """
    chosen = os.environ.get(GPT2_SOURCE_ENV, "").strip().lower()
    if chosen in ("openai", "hub"):
        return chosen
    if chosen:
        raise GptTuiError(f"{GPT2_SOURCE_ENV} is {chosen!r}; use 'openai' or 'hub'")
    if spec.hub_repo is None or base_url or os.environ.get(GPT2_URL_ENV):
        return "openai"
    snapshot = cached_snapshot(spec.hub_repo)
    if snapshot is not None and is_complete(snapshot):
        return "hub"
    return "openai" if importlib.util.find_spec("tensorflow") is not None else "hub"


def _convert_from_hub(
    spec: ModelSpec,
    target: Path,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> None:
    """A GPT-2 size from its Hub copy (the Hugging Face cache, fetched when missing), converted
    into the catalog's place, `models/124M/`, like OpenAI's files would be."""
    assert spec.hub_repo is not None
    snapshot = cached_snapshot(spec.hub_repo)
    if snapshot is None or not is_complete(snapshot):
        snapshot = hub.fetch(spec.hub_repo, progress=progress, cancel=cancel)
    checkpoint = open_checkpoint(snapshot, spec.hub_repo)
    hparams = {k: v for k, v in hparams_of(checkpoint, spec.hub_repo).items() if k in spec.hparams}
    if hparams != spec.hparams:
        raise ModelFileError(
            f"{spec.hub_repo} is not GPT-2 {spec.name} (its config says {hparams}); "
            f"set {GPT2_SOURCE_ENV}=openai to fetch OpenAI's files instead"
        )
    try:
        hf_convert.convert_checkpoint(
            checkpoint,
            target,
            label=spec.name,
            progress=_convert_progress(progress, spec.name, checkpoint.weights[0].name, cancel),
        )
    except OSError as exc:
        raise locations.storage_error(target.parent, exc) from exc


# --- progress -------------------------------------------------------------------------------------


def _waiting(progress: ProgressCallback | None, model: str) -> Callable[[], None] | None:
    if progress is None:
        return None
    return lambda: progress(DownloadProgress(model, "", 0, 0, 0, None, 0.0, phase="wait"))


def _convert_progress(
    progress: ProgressCallback | None, model: str, file: str, cancel: threading.Event | None
) -> Callable[[int, int], None]:
    """Conversion's per-tensor tick: reports progress, and stops (before anything is written)
    when `cancel` is set."""

    def tick(done: int, total: int) -> None:
        if cancel is not None and cancel.is_set():
            raise DownloadCancelled(f"conversion of {model} cancelled")
        if progress is not None:
            progress(DownloadProgress(model, file, 1, 1, done, total, 0.0, phase="convert"))

    return tick
