"""The converted-model cache: get a model ready once (download, convert), then load it fast.

Layout under `locations.models_dir()`:

    124M/                 the converted model (`model_dir` format), renamed into place whole
    124M.checkpoint/      OpenAI's files while downloading (`*.part` until verified); removed
                          after conversion unless `keep_checkpoint`
    124M.lock             held while a process downloads or converts 124M
    local/NAME-HASH/      models converted from a checkpoint directory given by path
    hf/ORG--NAME/         models converted from the Hugging Face cache (`--model ORG/NAME`)

What a name means (a catalog name, a Hugging Face repo id, a path) is decided in one place,
`models/names.py`'s `describe`; everything else asks it.

Loading never takes the lock: a converted directory only ever appears whole (one rename), so a
cached model loads even from a read-only cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpt_tui import locations
from gpt_tui.errors import GptTuiError, ModelFileError
from gpt_tui.models.catalog import (
    DEFAULT_GPT2_URL,
    GPT2_FILES,
    ModelSpec,
    hub_spec,
    resolve,
)
from gpt_tui.models.download import (
    DownloadCancelled,
    DownloadProgress,
    ProgressCallback,
    download_files,
    file_lock,
)
from gpt_tui.models.model_dir import (
    HPARAMS_FILE,
    LAYOUT,
    WEIGHTS_FILE,
    read_hparams,
    read_params,
)
from gpt_tui.models.names import DEFAULT_MODEL, describe

GPT2_URL_ENV = "GPT_TUI_GPT2_URL"
GPT2_SOURCE_ENV = "GPT_TUI_GPT2_SOURCE"  # "openai" (TensorFlow files) or "hub" (safetensors)
SOURCE_FILE = "source.json"  # in a model converted from a path: which checkpoint it came from


@dataclass(frozen=True)
class LoadedModel:
    name: str
    model: Any  # gpt_tui.engine.GPT2 (or, for SmolLM2, the LLaMA-family model)
    tokenizer: Any  # gpt_tui.tokenizer.Tokenizer
    path: Path
    hparams: dict[str, Any]


def spec_of(name: str) -> ModelSpec | None:
    """The spec to show before getting `name` ready (a catalog entry, or a Hugging Face repo
    with what the cache knows of it), None for a path; errors as `describe`."""
    ref = describe(name)
    if ref.kind == "catalog":
        assert ref.spec is not None
        if ref.spec.kind == "gpt2" and gpt2_source(ref.spec) == "hub":
            return dataclasses.replace(ref.spec, source="the Hugging Face Hub")
        return ref.spec
    if ref.kind == "path":
        return None
    known = {m.repo_id: m for m in hf_models()}.get(ref.name)
    if known is None:
        return hub_spec(ref.name)
    return hub_spec(ref.name, known.n_params, known.size_bytes)


def model_to_open(last_used: str | None) -> str:
    """The model to use when none is named: the last one used (the settings say which) if it
    loads without a network (cached, bundled, or a path that exists), else the bundled smollm2."""
    last = last_used
    if last:
        try:
            if Path(last).expanduser().exists() or is_cached(last):
                return last
        except GptTuiError:
            pass  # a name an older catalog knew: fall back to the default
    return DEFAULT_MODEL


# --- loading -------------------------------------------------------------------------------------


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
    checkpoint files, or a .gguf file. See `describe`."""
    ref = describe(name_or_path)
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


def load_model_dir(path: Path, name: str | None = None) -> LoadedModel:
    """Load a converted model directory; `name` (a catalog name) makes damage messages say how to
    repair the cache."""
    path = Path(path)
    try:
        hparams = read_hparams(path)
        model_class = _model_classes().get(hparams.get("architecture", "gpt2"))
        if model_class is None:
            raise ModelFileError(
                f"{path} holds a '{hparams['architecture']}' model; gpt-tui reads "
                f"{', '.join(_model_classes())}"
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


def _model_classes() -> dict[str, Callable[[dict[str, Any], dict[str, Any]], Any]]:
    """The forward pass for each `architecture` a converted directory may name."""
    from gpt_tui.engine import GPT2, Llama  # the engine loads only when a model does

    return {"gpt2": GPT2, "llama": Llama}


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
    from gpt_tui.models.bundled import smollm2_gguf_path

    if path is None:
        target = model_path(name)
        try:
            gguf_path = smollm2_gguf_path()
        except ModelFileError:
            if not _is_converted(target):
                raise
            # The package went away, but its converted copy still works offline.
            return dataclasses.replace(load_model_dir(target), name=name)
    else:
        gguf_path = path.resolve()
        digest = hashlib.sha1(str(gguf_path).encode()).hexdigest()[:12]
        target = locations.models_dir() / "local" / f"{gguf_path.stem}-{digest}"
    stat = gguf_path.stat()
    source = {
        "layout": LAYOUT,
        "path": str(gguf_path),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
    }
    if not _same_source(target, source):
        _convert_gguf(gguf_path, target, source, name, progress, cancel)
    try:
        loaded = load_model_dir(target)
    except ModelFileError:
        # A damaged cache: the GGUF is at hand, so convert it again instead of giving up.
        _convert_gguf(gguf_path, target, source, name, progress, cancel, force=True)
        loaded = load_model_dir(target)
    return dataclasses.replace(loaded, name=name)


def _convert_gguf(
    gguf_path: Path,
    target: Path,
    source: dict[str, Any],
    name: str,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
    force: bool = False,
) -> None:
    from gpt_tui.models.gguf_file import convert_gguf

    def convert(extra_files: dict[str, bytes]) -> None:
        reports = _convert_progress(progress, name, gguf_path.name, cancel)
        convert_gguf(gguf_path, target, extra_files=extra_files, progress=reports)

    _convert_once(target, source, name, convert, progress=progress, cancel=cancel, force=force)


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
        if not force and _same_source(target, source):
            return
        try:
            convert({SOURCE_FILE: json.dumps(source, indent=2).encode()})
        except OSError as exc:
            raise locations.storage_error(root, exc) from exc
    if progress is not None:
        progress(DownloadProgress(label, target.name, 1, 1, 1, 1, 0.0, phase="done"))


def load_tokenizer(path: Path) -> Any:
    from gpt_tui.tokenizer import Tokenizer

    if (path / "tokenizer_config.json").is_file():  # converted from Hugging Face (hf/convert.py)
        from gpt_tui.tokenizer.hf import HFTokenizer

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
    if path.is_dir() and (path / HPARAMS_FILE).is_file() and (path / WEIGHTS_FILE).is_file():
        return load_model_dir(path)
    from gpt_tui.models.hf.checkpoint import looks_like_checkpoint

    if looks_like_checkpoint(path):
        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        target = locations.models_dir() / "local" / f"{path.resolve().name}-{digest}"
        return _load_hf_dir(path, target, path.name, progress=progress, cancel=cancel)
    from gpt_tui.models.tf_checkpoint import is_checkpoint_dir

    if path.is_dir() and is_checkpoint_dir(path):
        converted = _convert_local(path, progress=progress, cancel=cancel)
        return dataclasses.replace(load_model_dir(converted), name=path.name)
    raise ModelFileError(
        f"{path} is not a model: expected a Hugging Face model directory (config.json + "
        f"*.safetensors + tokenizer.json), a converted model directory ({HPARAMS_FILE} + "
        f"{WEIGHTS_FILE}), a directory of OpenAI's GPT-2 checkpoint files, or a .gguf file"
    )


def _convert_local(
    checkpoint_dir: Path, *, progress: ProgressCallback | None, cancel: threading.Event | None
) -> Path:
    """Convert a checkpoint directory the user gave by path into the cache, once per version of
    its files (their sizes and times are remembered in `source.json`)."""
    from gpt_tui.models.tf_checkpoint import checkpoint_prefix, convert_checkpoint

    checkpoint_dir = checkpoint_dir.resolve()
    prefix = checkpoint_prefix(checkpoint_dir)
    source = {
        "layout": LAYOUT,
        "path": str(checkpoint_dir),
        "files": {
            p.name: [p.stat().st_size, p.stat().st_mtime_ns]
            for p in sorted(checkpoint_dir.iterdir())
            if p.name.startswith(prefix.name) or p.name in ("hparams.json", "encoder.json")
        },
    }
    digest = hashlib.sha1(str(checkpoint_dir).encode()).hexdigest()[:12]
    target = locations.models_dir() / "local" / f"{checkpoint_dir.name}-{digest}"
    if _same_source(target, source):
        return target
    label = str(checkpoint_dir)

    def convert(extra_files: dict[str, bytes]) -> None:
        reports = _convert_progress(progress, label, prefix.name, cancel)
        convert_checkpoint(checkpoint_dir, target, extra_files=extra_files, progress=reports)

    _convert_once(target, source, label, convert, progress=progress, cancel=cancel)
    return target


def _same_source(target: Path, source: dict[str, Any]) -> bool:
    try:
        return _is_converted(target) and json.loads((target / SOURCE_FILE).read_text()) == source
    except (OSError, ValueError):
        return False


# --- Hugging Face models --------------------------------------------------------------------------


def hf_model_path(repo_id: str) -> Path:
    """Where the converted copy of Hugging Face repo `repo_id` lives."""
    org, name = repo_id.split("/")
    return locations.models_dir() / "hf" / f"{org}--{name}"


def _load_hf_repo(
    repo_id: str, *, progress: ProgressCallback | None, cancel: threading.Event | None
) -> LoadedModel:
    """A repo from the Hugging Face cache (fetched from the Hub first when it is not there or
    lacks files), converted once into `hf/ORG--NAME/`."""
    from gpt_tui.models.hf import hub
    from gpt_tui.models.hf.hub_cache import cached_snapshot

    snapshot = cached_snapshot(repo_id)
    target = hf_model_path(repo_id)
    if snapshot is None and _is_converted(target):
        # The Hugging Face cache was cleared, but our converted copy still works (offline too).
        return dataclasses.replace(load_model_dir(target), name=repo_id)
    # Offline, an incomplete snapshot is opened anyway: its own refusal says more than "offline".
    if snapshot is None or not (_hf_complete(snapshot) or hub.offline()):
        snapshot = hub.fetch(repo_id, progress=progress, cancel=cancel)
    return _load_hf_dir(snapshot, target, repo_id, progress=progress, cancel=cancel)


def _hf_complete(snapshot: Path) -> bool:
    """The files a model needs are all there (whether they are good is for conversion to say)."""
    from gpt_tui.models.hf.safetensors import weight_files

    try:
        return (
            (snapshot / "config.json").is_file()
            and (snapshot / "tokenizer.json").is_file()
            and bool(weight_files(snapshot))
        )
    except ModelFileError:
        return False  # an index naming a shard that is not there yet


def _load_hf_dir(
    source_dir: Path,
    target: Path,
    label: str,
    *,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> LoadedModel:
    """A Hugging Face model directory, converted into `target` unless it already holds this
    version of the files (their sizes and times, in `source.json`)."""
    from gpt_tui.models.hf.checkpoint import open_checkpoint
    from gpt_tui.models.hf.convert import convert_checkpoint

    source_dir = source_dir.resolve()
    checkpoint = open_checkpoint(source_dir, label)  # refuses at once what cannot run
    files = sorted({*checkpoint.weights, source_dir / "config.json", source_dir / "tokenizer.json"})
    source = {
        "layout": LAYOUT,
        "path": str(source_dir),
        "files": {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in files},
    }
    if not _same_source(target, source):

        def convert(extra_files: dict[str, bytes]) -> None:
            reports = _convert_progress(progress, label, checkpoint.weights[0].name, cancel)
            convert_checkpoint(
                checkpoint, target, label=label, extra_files=extra_files, progress=reports
            )

        _convert_once(target, source, label, convert, progress=progress, cancel=cancel)
    return dataclasses.replace(load_model_dir(target), name=label)


@dataclass(frozen=True)
class HFModel:
    """A model in the Hugging Face cache, for `gpt-tui models` and the app's picker."""

    repo_id: str
    snapshot: Path
    hf_architecture: str  # "LlamaForCausalLM"
    n_params: int
    size_bytes: int  # its safetensors files
    supported: bool
    problem: str  # why gpt-tui cannot run it, when it cannot
    converted: bool  # a converted copy is ready: loading reads it at once


def hf_models() -> list[HFModel]:
    """Every model repo in the Hugging Face cache, runnable or not, by repo id; reads only
    headers (fast), never the network."""
    from gpt_tui.models.hf.checkpoint import summarize
    from gpt_tui.models.hf.hub_cache import cached_repos

    models = []
    for repo in cached_repos():
        summary = summarize(repo.snapshot, repo.repo_id)
        models.append(
            HFModel(
                repo.repo_id,
                repo.snapshot,
                summary.hf_architecture,
                summary.n_params,
                summary.size_bytes,
                summary.supported,
                summary.problem,
                _is_converted(hf_model_path(repo.repo_id)),
            )
        )
    return models


def _hf_status(repo_id: str) -> str:
    from gpt_tui.models.hf.hub_cache import cached_snapshot, repo_dir

    snapshot = cached_snapshot(repo_id)
    if snapshot is not None and _hf_complete(snapshot):
        return "cached"
    # refs/main is written last: a fetch that stopped has a snapshot directory and no ref yet.
    if (repo_dir(repo_id) / "snapshots").is_dir() or _is_converted(hf_model_path(repo_id)):
        return "partial"
    return "not downloaded"


# --- the cache of catalog models -----------------------------------------------------------------


def model_path(name: str) -> Path:
    """Where the converted model `name` lives (whether or not it is there yet)."""
    return locations.models_dir() / resolve(name).name


def checkpoint_path(name: str) -> Path:
    """Where OpenAI's files for `name` are downloaded to (and kept with `keep_checkpoint`)."""
    return _checkpoint_dir(resolve(name))


def is_cached(name: str) -> bool:
    """Ready to load without a network: converted in the cache, bundled, or (a Hugging Face
    repo id) complete in the Hugging Face cache."""
    ref = describe(name)
    if ref.kind == "hf":
        return _hf_status(ref.name) == "cached"
    if ref.kind == "path":
        return True
    spec = resolve(name)
    return spec.bundled or _is_converted(model_path(spec.name))


def status(name: str) -> str:
    """One of "bundled", "cached", "partial" (a download to resume) or "not downloaded"; for a
    Hugging Face repo id, its state in the Hugging Face cache."""
    ref = describe(name)
    if ref.kind == "hf":
        return _hf_status(ref.name)
    spec = resolve(name)
    if spec.bundled:
        return "bundled"
    if _is_converted(model_path(spec.name)):
        return "cached"
    if _checkpoint_dir(spec).exists():
        return "partial"
    return "not downloaded"


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
    if not force and _is_converted(target):
        return target
    root = locations.ensure_writable(locations.models_dir())
    with file_lock(
        root / f"{spec.name}.lock", cancel=cancel, on_wait=_waiting(progress, spec.name)
    ):
        if not force and _is_converted(target):
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
    from gpt_tui.models.tf_checkpoint import convert_checkpoint

    if gpt2_source(spec, base_url) == "hub":
        _convert_from_hub(spec, target, progress, cancel)
        return
    base = (base_url or os.environ.get(GPT2_URL_ENV) or DEFAULT_GPT2_URL).rstrip("/")
    checkpoint_dir = _checkpoint_dir(spec)
    if force:
        _remove_tree(checkpoint_dir)
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
        convert_checkpoint(
            checkpoint_dir,
            target,
            progress=_convert_progress(progress, spec.name, GPT2_FILES[-1], cancel),
        )
    except ModelFileError as exc:
        # Converting these files again cannot succeed: only fetching them again can.
        _remove_tree(checkpoint_dir)
        raise ModelFileError(
            f"the checkpoint of {spec.name} from {base} cannot be converted: {exc}; "
            f"the downloaded files were deleted, `gpt-tui download {spec.name}` fetches them again"
        ) from exc
    except OSError as exc:
        raise locations.storage_error(target.parent, exc) from exc
    if not keep_checkpoint:
        _remove_tree(checkpoint_dir)


def gpt2_source(spec: ModelSpec, base_url: str | None = None) -> str:
    """Where a GPT-2 size comes from: "openai" (TensorFlow checkpoints, converted with
    tensorflow) or "hub" (the same weights as safetensors, no tensorflow needed).

    `GPT_TUI_GPT2_SOURCE` decides when set; an OpenAI URL (argument or `GPT_TUI_GPT2_URL`)
    means OpenAI; a copy complete in the Hugging Face cache means the Hub (nothing to fetch);
    otherwise OpenAI when tensorflow is installed, else the Hub.
    """
    import importlib.util

    from gpt_tui.models.hf.hub_cache import cached_snapshot

    chosen = os.environ.get(GPT2_SOURCE_ENV, "").strip().lower()
    if chosen in ("openai", "hub"):
        return chosen
    if chosen:
        raise GptTuiError(f"{GPT2_SOURCE_ENV} is {chosen!r}; use 'openai' or 'hub'")
    if spec.hub_repo is None or base_url or os.environ.get(GPT2_URL_ENV):
        return "openai"
    snapshot = cached_snapshot(spec.hub_repo)
    if snapshot is not None and _hf_complete(snapshot):
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
    from gpt_tui.models.hf import hub
    from gpt_tui.models.hf.checkpoint import hparams_of, open_checkpoint
    from gpt_tui.models.hf.convert import convert_checkpoint
    from gpt_tui.models.hf.hub_cache import cached_snapshot

    assert spec.hub_repo is not None
    snapshot = cached_snapshot(spec.hub_repo)
    if snapshot is None or not _hf_complete(snapshot):
        snapshot = hub.fetch(spec.hub_repo, progress=progress, cancel=cancel)
    checkpoint = open_checkpoint(snapshot, spec.hub_repo)
    hparams = {k: v for k, v in hparams_of(checkpoint, spec.hub_repo).items() if k in spec.hparams}
    if hparams != spec.hparams:
        raise ModelFileError(
            f"{spec.hub_repo} is not GPT-2 {spec.name} (its config says {hparams}); "
            f"set {GPT2_SOURCE_ENV}=openai to fetch OpenAI's files instead"
        )
    try:
        convert_checkpoint(
            checkpoint,
            target,
            label=spec.name,
            progress=_convert_progress(progress, spec.name, checkpoint.weights[0].name, cancel),
        )
    except OSError as exc:
        raise locations.storage_error(target.parent, exc) from exc


def remove_model(name: str) -> int:
    """Delete model `name` from the cache (converted files, checkpoint, unfinished downloads);
    returns the bytes freed (0 when there was nothing)."""
    spec = resolve(name)
    if spec.bundled:
        raise GptTuiError(f"{spec.name} is bundled with gpt-tui and cannot be removed")
    root = locations.models_dir()
    doomed = [root / spec.name, _checkpoint_dir(spec), *root.glob(f".{spec.name}.*.tmp")]
    doomed = [p for p in doomed if p.exists()]
    if not doomed:
        return 0
    freed = sum(_tree_size(p) for p in doomed)
    with file_lock(root / f"{spec.name}.lock", wait=False):
        for p in doomed:
            _remove_tree(p)
    return freed


def remove_hf_conversion(repo_id: str) -> int:
    """Delete gpt-tui's converted copy of a Hugging Face repo (never the Hugging Face cache,
    which other tools share); returns the bytes freed."""
    target = hf_model_path(repo_id)
    if not target.exists():
        return 0
    freed = _tree_size(target)
    with file_lock(target.with_name(f"{target.name}.lock"), wait=False):
        _remove_tree(target)
    return freed


def _checkpoint_dir(spec: ModelSpec) -> Path:
    return locations.models_dir() / f"{spec.name}.checkpoint"


def _is_converted(path: Path) -> bool:
    return (path / HPARAMS_FILE).is_file() and (path / WEIGHTS_FILE).is_file()


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _remove_tree(path: Path) -> None:
    try:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    except OSError as exc:
        raise locations.storage_error(path, exc) from exc


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
