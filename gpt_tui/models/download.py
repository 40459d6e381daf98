"""Resumable, verified, atomic, locked HTTP downloads that report progress through a callback.

The habits of the careful downloaders (huggingface_hub, pip, ollama), which the original GPT-2
download script lacks:

- bytes go to `NAME.part`; only a verified file is renamed to `NAME` (`os.replace`), so a final
  name never holds a partial file;
- an interrupted download resumes with `Range: bytes=N-`; a server that answers 200 instead of
  206 sends the whole file again, so the `.part` file is started over;
- the length is checked against Content-Length (or Content-Range) and the MD5 against
  Content-MD5 (Azure blob storage sends it for OpenAI's files; on a ranged answer it sends the
  whole file's MD5 as `x-ms-blob-content-md5`, which we use the same way);
- connection resets, timeouts and 5xx answers are retried with back-off; a 404 or an unreachable
  host fails at once, with what to do;
- `file_lock` keeps two gpt-tui processes from fetching the same model at once.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import filelock
import requests
import urllib3

from gpt_tui import __version__
from gpt_tui.errors import DownloadError, GptTuiError
from gpt_tui.locations import storage_error

CHUNK_BYTES = 1 << 16
PROGRESS_INTERVAL = 0.1  # seconds between progress reports for one file; the last always comes
OFFLINE_HINT = "offline? the bundled smollm2 model works without a network (gpt-tui -m smollm2)"


@dataclass(frozen=True)
class DownloadProgress:
    """One step of getting a model ready, for a progress bar.

    `phase` is "wait" (another process holds the model's lock), "download" (`done`/`total` are
    bytes of `file`), "convert" (`done`/`total` are tensors) or "done".
    """

    model: str
    file: str
    file_index: int  # 1-based position of `file` among the `file_count` files
    file_count: int
    done: int
    total: int | None
    rate: float  # bytes (or tensors) per second in this run; 0.0 until measurable
    phase: str = "download"

    @property
    def fraction(self) -> float | None:
        return self.done / self.total if self.total else None

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate, when both are known."""
        if not self.total or self.rate <= 0:
            return None
        return max(self.total - self.done, 0) / self.rate


ProgressCallback = Callable[[DownloadProgress], None]


class DownloadCancelled(GptTuiError):
    """The user stopped a download; the `.part` file stays, and the next run resumes it."""


class _Transient(Exception):
    """A failure worth retrying: reset connection, timeout, 5xx."""


def new_session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = f"gpt-tui/{__version__}"
    # A compressed answer would not match Content-Length or Content-MD5 once decoded.
    session.headers["Accept-Encoding"] = "identity"
    return session


def download_file(
    url: str,
    dest: Path,
    *,
    session: requests.Session | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: tuple[float, float] = (10.0, 60.0),
    model: str = "",
    file_index: int = 1,
    file_count: int = 1,
) -> Path:
    """Fetch `url` to `dest` through `dest.part`, resuming and verifying; returns `dest`.

    Transient failures are retried `retries` times, waiting `backoff`, 2*`backoff`, ... seconds;
    after that the `.part` file stays for the next run to resume.
    """
    dest = Path(dest)
    own_session = session is None
    session = session or new_session()
    report = _Reporter(progress, model, dest.name, file_index, file_count)
    try:
        for attempt in range(retries + 1):
            _check_cancel(cancel, url)
            try:
                return _attempt(session, url, dest, report, cancel, timeout)
            except _Transient as exc:
                if attempt == retries:
                    raise DownloadError(
                        f"downloading {url} failed {retries + 1} times ({exc}); "
                        "run the same command again to resume"
                    ) from exc
                delay = backoff * 2**attempt
                if cancel is not None:
                    cancel.wait(delay)
                else:
                    time.sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises
    finally:
        if own_session:
            session.close()


def download_files(
    base_url: str,
    names: Sequence[str],
    dest_dir: Path,
    *,
    model: str = "",
    session: requests.Session | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    **kwargs: object,
) -> list[Path]:
    """`download_file` for `{base_url}/{name}` of each name into `dest_dir`; files already there
    (they are only ever renamed into place whole and verified) are kept."""
    own_session = session is None
    session = session or new_session()
    paths = []
    try:
        for index, name in enumerate(names, start=1):
            dest = Path(dest_dir) / name
            if dest.is_file():
                size = dest.stat().st_size
                if progress is not None:
                    progress(DownloadProgress(model, name, index, len(names), size, size, 0.0))
            else:
                download_file(
                    f"{base_url.rstrip('/')}/{name}",
                    dest,
                    session=session,
                    progress=progress,
                    cancel=cancel,
                    model=model,
                    file_index=index,
                    file_count=len(names),
                    **kwargs,  # type: ignore[arg-type]
                )
            paths.append(dest)
    finally:
        if own_session:
            session.close()
    return paths


def _attempt(
    session: requests.Session,
    url: str,
    dest: Path,
    report: _Reporter,
    cancel: threading.Event | None,
    timeout: tuple[float, float],
) -> Path:
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response = session.get(url, headers=headers, stream=True, timeout=timeout)
    except requests.RequestException as exc:
        unreachable = _unreachable_reason(exc)
        if unreachable:
            host = urlsplit(url).netloc
            raise DownloadError(f"cannot reach {host} ({unreachable}); {OFFLINE_HINT}") from exc
        raise _Transient(_short(exc)) from exc

    with response:
        status = response.status_code
        if status == 416 and offset:
            # Our .part is as long as the file or longer (the file changed): start over.
            part.unlink()
            raise _Transient("the server cannot resume this file; starting over")
        if status in (404, 410):
            raise DownloadError(
                f"{url} was not found (HTTP {status}); check the model name and the base URL "
                "(--base-url or GPT_TUI_GPT2_URL)"
            )
        if status >= 500 or status in (408, 429):
            raise _Transient(f"HTTP {status} {response.reason}")
        if status not in (200, 206):
            raise DownloadError(f"{url}: the server answered HTTP {status} {response.reason}")

        if status == 206:
            start, total = _parse_content_range(response.headers.get("Content-Range", ""))
            if start != offset:
                part.unlink()
                raise _Transient(f"the server resumed at byte {start}, not {offset}")
            # A 206's Content-MD5 (if any) covers only the range; Azure names the whole file's.
            expected_md5 = response.headers.get("x-ms-blob-content-md5")
        else:
            offset = 0  # the server ignored Range (or we sent none): the whole file comes again
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            expected_md5 = response.headers.get("Content-MD5")

        if total is not None:
            _check_free_space(dest.parent, total - offset)
        hasher = _md5_of(part) if offset else hashlib.md5()
        size = _stream(response, part, offset, hasher, report, total, cancel, url)

    if total is not None and size != total:
        if size > total:
            part.unlink()
        raise _Transient(f"got {size} of {total} bytes")
    if expected_md5 and not _md5_matches(hasher, expected_md5):
        part.unlink()
        raise DownloadError(
            f"{dest.name} from {url} is corrupt: its MD5 is "
            f"{base64.b64encode(hasher.digest()).decode()}, the server says {expected_md5}; "
            "the bad download was deleted, run the command again"
        )
    try:
        os.replace(part, dest)
    except OSError as exc:
        raise storage_error(dest.parent, exc) from exc
    report(size, total, final=True)
    return dest


def _stream(
    response: requests.Response,
    part: Path,
    offset: int,
    hasher: hashlib._Hash,
    report: _Reporter,
    total: int | None,
    cancel: threading.Event | None,
    url: str,
) -> int:
    """Append the body to `part` (truncated first when `offset` is 0); returns the part's size."""
    size = offset
    report.start(offset)
    try:
        file = open(part, "ab" if offset else "wb")  # noqa: SIM115 - closed below, errors mapped
    except OSError as exc:
        raise storage_error(part.parent, exc) from exc
    with file:
        chunks = response.iter_content(CHUNK_BYTES)
        while True:
            _check_cancel(cancel, url)
            try:
                chunk = next(chunks, None)
            except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
                raise _Transient(f"connection lost after {size} bytes: {_short(exc)}") from exc
            if chunk is None:
                break
            try:
                file.write(chunk)
            except OSError as exc:
                raise storage_error(part.parent, exc) from exc
            hasher.update(chunk)
            size += len(chunk)
            report(size, total)
        try:
            file.flush()
            os.fsync(file.fileno())
        except OSError as exc:
            raise storage_error(part.parent, exc) from exc
    return size


class _Reporter:
    """Turns byte counts into throttled `DownloadProgress` events."""

    def __init__(
        self,
        callback: ProgressCallback | None,
        model: str,
        file: str,
        file_index: int,
        file_count: int,
    ) -> None:
        self.callback = callback
        self.fields = (model, file, file_index, file_count)
        self.started = time.monotonic()
        self.start_done = 0
        self.last = 0.0

    def start(self, done: int) -> None:
        self.started = time.monotonic()
        self.start_done = done
        self.last = 0.0

    def __call__(self, done: int, total: int | None, final: bool = False) -> None:
        if self.callback is None:
            return
        now = time.monotonic()
        if not final and now - self.last < PROGRESS_INTERVAL:
            return
        self.last = now
        elapsed = now - self.started
        rate = (done - self.start_done) / elapsed if elapsed > 0.05 else 0.0
        self.callback(DownloadProgress(*self.fields, done=done, total=total, rate=rate))


def _check_cancel(cancel: threading.Event | None, url: str) -> None:
    if cancel is not None and cancel.is_set():
        raise DownloadCancelled(f"download of {url} cancelled; the next run resumes it")


def _check_free_space(directory: Path, needed: int) -> None:
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return  # cannot tell; a full disk still fails clearly when writing
    if needed > free:
        raise storage_error(
            directory,
            OSError(errno.ENOSPC, f"needs {needed / 1e6:,.0f} MB, {free / 1e6:,.0f} MB free"),
        )


def _parse_content_range(value: str) -> tuple[int, int | None]:
    """`bytes 100-199/1000` -> (100, 1000); the total may be `*` (unknown)."""
    try:
        unit, _, rest = value.partition(" ")
        span, _, total = rest.partition("/")
        start = int(span.split("-")[0])
        if unit != "bytes":
            raise ValueError(unit)
        return start, None if total == "*" else int(total)
    except ValueError as exc:
        raise _Transient(f"unreadable Content-Range {value!r}") from exc


def _md5_of(path: Path) -> hashlib._Hash:
    hasher = hashlib.md5()
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            hasher.update(block)
    return hasher


def _md5_matches(hasher: hashlib._Hash, expected: str) -> bool:
    """Content-MD5 is base64 of the digest (RFC 1864); some servers send hex instead."""
    expected = expected.strip()
    return expected in (base64.b64encode(hasher.digest()).decode(), hasher.hexdigest())


def _unreachable_reason(exc: BaseException) -> str | None:
    """Why the host cannot be reached at all ("connection refused", "name lookup failed", ...), in
    which case retrying is pointless; None for failures worth retrying."""
    if isinstance(exc, requests.ConnectTimeout):
        return "connection timed out"
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        error = stack.pop()
        if not isinstance(error, BaseException) or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, urllib3.exceptions.NameResolutionError):
            return "name lookup failed"
        if isinstance(error, urllib3.exceptions.NewConnectionError):
            cause = error.__cause__ or error.__context__
            if isinstance(cause, ConnectionRefusedError):
                return "connection refused"
            if isinstance(cause, OSError) and cause.strerror:
                return cause.strerror.lower()
            return "cannot connect"
        stack.extend([getattr(error, "reason", None), error.__cause__, error.__context__])
        stack.extend(error.args)
    return None


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:197] + "..."


@contextlib.contextmanager
def file_lock(
    path: Path,
    *,
    cancel: threading.Event | None = None,
    on_wait: Callable[[], None] | None = None,
    wait: bool = True,
    poll: float = 0.25,
) -> Iterator[None]:
    """Hold the lock file `path` (an OS lock, released even if the process dies).

    When another process holds it: with `wait`, call `on_wait` once and wait (`cancel` stops the
    wait); without, raise a `DownloadError` saying so.
    """
    lock = filelock.FileLock(str(path))
    try:
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            if not wait:
                raise DownloadError(
                    f"another gpt-tui process is working on {path.stem}; try again when it is done"
                ) from None
            if on_wait is not None:
                on_wait()
            while True:
                _check_cancel(cancel, path.stem)
                try:
                    lock.acquire(timeout=poll)
                    break
                except filelock.Timeout:
                    continue
    except OSError as exc:
        raise storage_error(path.parent, exc) from exc
    try:
        yield
    finally:
        lock.release()
