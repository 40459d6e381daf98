"""Fetch a model from the Hugging Face Hub into the shared hub cache, with huggingface_hub.

huggingface_hub brings what other tools rely on: its cache layout (so transformers finds what
we fetched and we find what it fetched), a lock per file, downloads to a temporary file renamed
into place, and a retry with `Range` when a connection drops mid-file. It reads `HF_ENDPOINT`
and `HF_TOKEN`; we pass both explicitly, read at call time, so a test (or a user's shell) that
sets them after import is obeyed, and we refuse at once when `HF_HUB_OFFLINE` is set.

Only what a model needs is fetched: config.json, generation_config.json, the tokenizer files and
the safetensors weights, never a pickle (`pytorch_model.bin`). A repo with no safetensors is
refused before anything is downloaded.

Progress: one `DownloadProgress` per chunk through a tqdm stand-in (`_ProgressBar`), which also
checks the cancel Event and raises `DownloadCancelled` from inside the download loop. Files
already complete stay in the cache, so the next run fetches only the rest; huggingface_hub drops
a partly downloaded file when its download is interrupted, so that one file starts over.
"""

from __future__ import annotations

import fnmatch
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpt_tui.errors import DownloadError, ModelFileError, StorageError, UnknownModelError
from gpt_tui.models.download import OFFLINE_HINT, DownloadCancelled, DownloadProgress
from gpt_tui.models.hf.checkpoint import PICKLE_FILES, TOKENIZER_FILES
from gpt_tui.models.hf.hub_cache import hub_cache_dir, repo_dir
from gpt_tui.models.hf.safetensors import INDEX_FILE, indexed_shards

WANTED = ("config.json", *TOKENIZER_FILES, "*.safetensors", INDEX_FILE)
DEFAULT_ENDPOINT = "https://huggingface.co"
OFFLINE_VALUES = ("1", "on", "yes", "true")


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in OFFLINE_VALUES


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT", "").strip() or DEFAULT_ENDPOINT).rstrip("/")


def fetch(
    repo_id: str,
    *,
    revision: str | None = None,
    progress: Callable[[DownloadProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> Path:
    """Download `repo_id`'s model files into the hub cache; returns the snapshot directory."""
    if offline():
        raise DownloadError(
            f"{repo_id} is not in the Hugging Face cache ({hub_cache_dir()}) and HF_HUB_OFFLINE "
            "is set; unset it to download, or fetch the model where there is a network"
        )
    from huggingface_hub import HfApi  # slow to import: only a download needs it

    url = endpoint()
    token = os.environ.get("HF_TOKEN", "").strip() or None
    with _hub_errors(repo_id, url):
        info = HfApi(endpoint=url, token=token).model_info(
            repo_id, revision=revision or "main", files_metadata=True
        )
    sizes = {s.rfilename: s.size for s in info.siblings or []}
    files = choose_files(repo_id, sizes)
    cache = hub_cache_dir()
    if INDEX_FILE in files:
        # A sharded checkpoint: fetch the shards its index names, not a stray extra copy.
        with _hub_errors(repo_id, url):
            _download(repo_id, INDEX_FILE, info.sha, cache, url, token, _progress_bar(
                None, cancel, repo_id, INDEX_FILE, 0, 0, None))  # fmt: skip
        snapshot = repo_dir(repo_id, cache) / "snapshots" / str(info.sha)
        shards = indexed_shards(snapshot) or []
        files = {n: size for n, size in files.items() if not n.endswith(".safetensors")}
        files |= {n: sizes.get(n) for n in shards}
    for index, (name, size) in enumerate(files.items(), start=1):
        _check_cancel(cancel, repo_id)
        bar = _progress_bar(progress, cancel, repo_id, name, index, len(files), size)
        with _hub_errors(repo_id, url):
            _download(repo_id, name, info.sha, cache, url, token, bar)
    try:
        _write_ref(repo_dir(repo_id, cache), revision or "main", str(info.sha))
    except OSError as exc:
        raise _cache_error(cache, exc) from exc
    if progress is not None:
        progress(DownloadProgress(repo_id, "", len(files), len(files), 1, 1, 0.0, phase="done"))
    return repo_dir(repo_id, cache) / "snapshots" / str(info.sha)


def _write_ref(repo: Path, revision: str, commit: str) -> None:
    """refs/REVISION -> the commit, as snapshot_download leaves it (the files were fetched by
    commit, which writes no ref), so that transformers and we find the snapshot offline. Written
    last and atomically: a ref only ever points at a complete snapshot."""
    if revision == commit:
        return
    ref = repo / "refs" / revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    tmp = ref.with_name(f".{ref.name}.{os.getpid()}.tmp")
    tmp.write_text(commit)
    os.replace(tmp, ref)


def choose_files(repo_id: str, sizes: dict[str, int | None]) -> dict[str, int | None]:
    """The files to fetch (small ones first, so a bad repo fails before the big download), or
    a refusal that says why: no config, or weights only as a pickle."""
    names = [n for n in sizes if "/" not in n and any(fnmatch.fnmatch(n, p) for p in WANTED)]
    if "config.json" not in names:
        raise ModelFileError(f"{repo_id} on the Hub has no config.json; it is not a model repo")
    if not any(n.endswith(".safetensors") for n in names):
        pickled = [n for n in sizes if n in PICKLE_FILES or n.endswith(".bin")]
        if pickled:
            raise ModelFileError(
                f"{repo_id} publishes its weights only as a PyTorch pickle ({pickled[0]}), which "
                "gpt-tui never loads (unpickling runs code from the file); look for a "
                "safetensors version of the model on the Hub"
            )
        raise ModelFileError(f"{repo_id} on the Hub has no *.safetensors weights")
    names.sort(key=lambda n: (n.endswith(".safetensors"), n))
    return {n: sizes[n] for n in names}


def _download(
    repo_id: str,
    name: str,
    commit: Any,
    cache: Path,
    url: str,
    token: str | None,
    bar: type,
) -> None:
    from huggingface_hub import hf_hub_download

    hf_hub_download(
        repo_id,
        name,
        revision=commit,  # the commit model_info saw: every file from the same revision
        cache_dir=cache,
        endpoint=url,
        token=token,
        tqdm_class=bar,
    )


def _progress_bar(
    progress: Callable[[DownloadProgress], None] | None,
    cancel: threading.Event | None,
    repo_id: str,
    name: str,
    index: int,
    count: int,
    size: int | None,
) -> type:
    """A class huggingface_hub instantiates as its progress bar for one file (it accepts any
    class that takes tqdm's keyword arguments and has `update`)."""

    class _ProgressBar:
        def __init__(self, *args: Any, total: int | None = None, initial: int = 0, **_: Any):
            self.total = total or size
            self.n = initial
            self.started = time.monotonic()
            self.last, self.reported = 0.0, 0
            self._report(force=True)

        def update(self, n: int | float | None = 1) -> None:
            _check_cancel(cancel, repo_id)  # raised inside the download loop: it stops there
            self.n += int(n or 0)
            self._report()

        def _report(self, force: bool = False) -> None:
            now = time.monotonic()
            # At most ten a second, but always the first bytes and the last.
            due = force or now - self.last >= 0.1 or self.n == self.total or not self.reported
            if progress is None or not due:
                return
            self.last, self.reported = now, self.n
            elapsed = now - self.started
            rate = self.n / elapsed if elapsed > 0.5 else 0.0
            progress(DownloadProgress(repo_id, name, index, count, self.n, self.total, rate))

        def close(self) -> None:
            pass

        def refresh(self) -> None:
            pass

        def set_postfix_str(self, *args: Any, **kwargs: Any) -> None:
            pass

        def __enter__(self) -> _ProgressBar:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    return _ProgressBar


def _check_cancel(cancel: threading.Event | None, repo_id: str) -> None:
    if cancel is not None and cancel.is_set():
        raise DownloadCancelled(f"download of {repo_id} cancelled")


class _hub_errors:  # noqa: N801 - used as a context manager, reads like a `with` clause
    """huggingface_hub's exceptions -> ours, each one line with what to do."""

    def __init__(self, repo_id: str, url: str) -> None:
        self.repo_id, self.url = repo_id, url

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: object) -> bool:
        if exc is None or isinstance(exc, (DownloadCancelled, ModelFileError)):
            return False
        from huggingface_hub import errors

        repo, url = self.repo_id, self.url
        if isinstance(exc, errors.GatedRepoError):
            raise DownloadError(
                f"{repo} is gated on {url}: accept its terms on the model's page, then set "
                "HF_TOKEN to an access token"
            ) from exc
        if isinstance(exc, errors.RepositoryNotFoundError):
            raise UnknownModelError(
                f"no model {repo} on {url} (a typo? a private repo needs HF_TOKEN)"
            ) from exc
        if isinstance(exc, errors.RevisionNotFoundError):
            raise DownloadError(f"{repo} has no such revision on {url}") from exc
        if isinstance(exc, errors.HfHubHTTPError):
            status = getattr(getattr(exc, "response", None), "status_code", "?")
            raise DownloadError(
                f"the Hub at {url} answered {status} for {repo}; try again later"
            ) from exc
        if isinstance(exc, OSError) and not _is_network(exc):
            raise _cache_error(hub_cache_dir(), exc) from exc
        if _is_network(exc) or isinstance(exc, errors.LocalEntryNotFoundError):
            raise DownloadError(
                f"cannot reach the Hub at {url} for {repo} ({type(exc).__name__}: {exc}); run "
                f"the same command again to resume; {OFFLINE_HINT}"
            ) from exc
        return False


def _cache_error(cache: Path, exc: OSError) -> StorageError:
    """As `paths.storage_error`, but the variable that moves this cache is HF_HUB_CACHE."""
    reason = exc.strerror or str(exc)
    return StorageError(
        f"cannot write to the Hugging Face cache {cache}: {reason}; free some space or fix the "
        "permissions, or set HF_HUB_CACHE to a writable directory"
    )


def _is_network(exc: BaseException) -> bool:
    """A transport failure of the HTTP library huggingface_hub uses (httpx, or its successor)."""
    module = type(exc).__module__.split(".")[0]
    return module.startswith(("httpx", "httpcore", "requests", "urllib3")) or (
        "Consistency check failed" in str(exc)
    )
