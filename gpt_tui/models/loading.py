"""Loading a model by name, ready to generate: get it into the converted cache once (download,
convert: `conversion.py`), then load the converted directory fast.

Loading never takes the lock: a converted directory only ever appears whole (one rename), so a
cached model loads even from a read-only cache.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpt_tui.engine import GPT2, Llama
from gpt_tui.errors import ModelFileError
from gpt_tui.models import bundled
from gpt_tui.models.cache import hf_model_path, is_converted, local_model_path, model_path
from gpt_tui.models.conversion import (
    convert_gguf,
    convert_hf_dir,
    convert_tf_checkpoint,
    ensure_model,
)
from gpt_tui.models.download import ProgressCallback
from gpt_tui.models.hf import hub
from gpt_tui.models.hf.checkpoint import is_complete, looks_like_checkpoint
from gpt_tui.models.hf.hub_cache import cached_snapshot
from gpt_tui.models.memory import check_fits, kv_cache_bytes
from gpt_tui.models.model_dir import HPARAMS_FILE, WEIGHTS_FILE, read_hparams, read_params
from gpt_tui.models.names import describe
from gpt_tui.models.tf_checkpoint import is_checkpoint_dir
from gpt_tui.tokenizer import Tokenizer
from gpt_tui.tokenizer.hf import HFTokenizer

MODEL_CLASSES = {"gpt2": GPT2, "llama": Llama}
"""The forward pass for each `architecture` a converted directory may name."""


@dataclass(frozen=True)
class LoadedModel:
    name: str
    model: GPT2 | Llama
    tokenizer: Tokenizer | HFTokenizer
    path: Path
    hparams: dict[str, Any]


def load_model(
    name_or_path: str | Path,
    *,
    base_url: str | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> LoadedModel:
    """A ready-to-generate model from a catalog name (downloaded and converted on first use), a
    Hugging Face repo id ORG/NAME (from the Hugging Face cache, else fetched from the Hub), or a
    path: a converted model directory, a Hugging Face model directory, a directory of OpenAI's
    checkpoint files, or a .gguf file; or a model in Ollama's store by its name. See
    `describe`. A model too large for the memory available is refused before anything is
    converted or loaded (NotEnoughMemoryError)."""
    ref = describe(name_or_path)
    if ref.kind == "store":  # a GGUF in Ollama's store, under its Ollama name
        assert ref.path is not None
        return _load_gguf(ref.path, ref.name, progress=progress, cancel=cancel)
    if ref.kind == "path":
        assert ref.path is not None
        return _load_path(ref.path, progress=progress, cancel=cancel)
    if ref.kind == "hf":
        return _load_hf_repo(ref.name, progress=progress, cancel=cancel)
    spec = ref.spec
    assert spec is not None
    if spec.kind == "gguf":
        return _load_gguf(None, spec.name, progress=progress, cancel=cancel)
    model_dir = ensure_model(spec.name, base_url=base_url, progress=progress, cancel=cancel)
    return load_model_dir(model_dir, name=spec.name)


def load_model_dir(path: Path, name: str | None = None, label: str | None = None) -> LoadedModel:
    """Load a converted model directory; `name` (a catalog name) makes damage messages say how to
    repair the cache, `label` names the model in a refusal for want of memory."""
    path = Path(path)
    try:
        hparams = read_hparams(path)
        model_class = MODEL_CLASSES.get(hparams.get("architecture", "gpt2"))
        if model_class is None:
            raise ModelFileError(
                f"{path} holds a '{hparams['architecture']}' model; gpt-tui reads "
                f"{', '.join(MODEL_CLASSES)}"
            )
        check_fits(
            label or name or path.name,
            _file_size(path / WEIGHTS_FILE) + kv_cache_bytes(hparams),
            "its weights and the kv cache of a long conversation",
        )
        params = read_params(path)
        try:
            model = model_class(params, hparams)  # checks every tensor's shape against hparams
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelFileError(
                f"{path / WEIGHTS_FILE} does not match {HPARAMS_FILE}: {exc}"
            ) from exc
        tokenizer = load_tokenizer(path)
    except ModelFileError as exc:
        if name is None:
            raise
        raise ModelFileError(
            f"the cached model {name} is damaged ({exc}); "
            f"repair it with `gpt-tui download {name} --force`"
        ) from exc
    return LoadedModel(name or path.name, model, tokenizer, path, hparams)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # read_params says what is wrong with it


def load_tokenizer(path: Path) -> Tokenizer | HFTokenizer:
    if (path / "tokenizer_config.json").is_file():  # converted from Hugging Face (hf/convert.py)
        return HFTokenizer.from_dir(path)
    try:
        if (path / "tokenizer.json").is_file():
            return Tokenizer.from_json(json.loads((path / "tokenizer.json").read_text()))
        encoder, vocab = path / "encoder.json", path / "vocab.bpe"
        if not (encoder.is_file() and vocab.is_file()):
            raise ModelFileError(f"{path} has no tokenizer (encoder.json + vocab.bpe)")
        return Tokenizer.from_gpt2_files(encoder, vocab)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelFileError(f"the tokenizer in {path} is damaged: {exc}") from exc


def _load_path(
    path: Path, *, progress: ProgressCallback | None, cancel: threading.Event | None
) -> LoadedModel:
    if path.is_file() and path.suffix.lower() == ".gguf":
        return _load_gguf(path, path.stem, progress=progress, cancel=cancel)
    if path.is_dir() and is_converted(path):
        return load_model_dir(path)
    if looks_like_checkpoint(path):
        target = local_model_path(path)
        convert_hf_dir(path, target, path.name, progress=progress, cancel=cancel)
        return dataclasses.replace(load_model_dir(target, label=path.name), name=path.name)
    if path.is_dir() and is_checkpoint_dir(path):
        converted = convert_tf_checkpoint(path, progress=progress, cancel=cancel)
        return dataclasses.replace(load_model_dir(converted), name=path.name)
    raise ModelFileError(
        f"{path} is not a model: expected a Hugging Face model directory (config.json + "
        f"*.safetensors + tokenizer.json), a converted model directory ({HPARAMS_FILE} + "
        f"{WEIGHTS_FILE}), a directory of OpenAI's GPT-2 checkpoint files, or a .gguf file"
    )


def _load_gguf(
    path: Path | None,
    name: str,
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> LoadedModel:
    """A GGUF model, converted into the cache on first use (dequantizing takes seconds, loading
    the float32 result a fraction of one): the bundled smollm2 (`path` None) into
    `models/smollm2/`, a file given by path into `models/local/NAME-HASH/`. `source.json`
    records the file's path, size and time, so a changed file (a new package) is converted again.
    """
    if path is None:
        target = model_path(name)
        try:
            gguf_path = bundled.smollm2_gguf_path()
        except ModelFileError:
            if not is_converted(target):
                raise
            # The package went away, but its converted copy still works offline.
            return dataclasses.replace(load_model_dir(target, label=name), name=name)
    else:
        gguf_path = path.resolve()
        target = local_model_path(gguf_path)
    convert_gguf(gguf_path, target, name, progress=progress, cancel=cancel)
    try:
        loaded = load_model_dir(target, label=name)
    except ModelFileError:
        # A damaged cache: the GGUF is at hand, so convert it again instead of giving up.
        convert_gguf(gguf_path, target, name, progress=progress, cancel=cancel, force=True)
        loaded = load_model_dir(target, label=name)
    return dataclasses.replace(loaded, name=name)


def _load_hf_repo(
    repo_id: str, *, progress: ProgressCallback | None, cancel: threading.Event | None
) -> LoadedModel:
    """A repo from the Hugging Face cache (fetched from the Hub first when it is not there or
    lacks files), converted once into `hf/ORG--NAME/`."""
    snapshot = cached_snapshot(repo_id)
    target = hf_model_path(repo_id)
    if snapshot is None and is_converted(target):
        # The Hugging Face cache was cleared, but our converted copy still works (offline too).
        return dataclasses.replace(load_model_dir(target, label=repo_id), name=repo_id)
    # Offline, an incomplete snapshot is opened anyway: its own refusal says more than "offline".
    if snapshot is None or not (is_complete(snapshot) or hub.offline()):
        snapshot = hub.fetch(repo_id, progress=progress, cancel=cancel)
    convert_hf_dir(snapshot, target, repo_id, progress=progress, cancel=cancel)
    return dataclasses.replace(load_model_dir(target, label=repo_id), name=repo_id)
