"""What the commands share to print and to get a model: the consoles, download progress, the
model asked for (remembered for the next run), number formats."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from gpt_tui.display import visible_token
from gpt_tui.engine.plan import plan_of
from gpt_tui.errors import BackendError, GptTuiError, InputError, ModelFileError
from gpt_tui.models.names import describe, is_remote, model_setting
from gpt_tui.settings import default_model_name, load_settings, save_settings

if TYPE_CHECKING:
    from gpt_tui.models.download import DownloadProgress
    from gpt_tui.models.loading import LoadedModel

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def read_prompt(prompt: str) -> str:
    if prompt != "-":
        return prompt
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"stdin is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "convert it first, e.g. with iconv"
        ) from None


def load_for_cli(name: str | None, base_url: str | None) -> LoadedModel:
    """A local model, for the commands only the engine can do (lens, bench)."""
    from gpt_tui.models.loading import load_model

    name = name or default_model_name()
    with rich_download_progress() as progress, _named(name):
        loaded = load_model(name, base_url=base_url, progress=progress)
    _remember_model(name)
    _say_plan(loaded.model)
    return loaded


def open_for_cli(
    name: str | None, base_url: str | None, api_key: str | None = None
) -> tuple[str, Any]:
    """The backend of the model asked for (downloaded first, with progress, if need be; a
    server is connected to and probed)."""
    from gpt_tui.backends.local import engine_model
    from gpt_tui.backends.opening import open_backend

    name = name or default_model_name()
    if is_remote(name):
        from gpt_tui.backends import openai as remote

        check_server_url(name)
        with stderr.status(f"connecting to {model_setting(name)}"):  # (without credentials)
            backend = open_backend(name, api_key=api_key)
        stderr.print(f"[{remote.status_line(backend)}]", style="dim", markup=False)
    else:
        with rich_download_progress() as progress, _named(name):
            backend = open_backend(name, base_url=base_url, progress=progress, strict=True)
    _remember_model(name)
    model = engine_model(backend)
    if model is not None:
        _say_plan(model)
    return name, backend


def check_server_url(url: str) -> None:
    """A server's URL that cannot be one (no host) is a bad argument, said before connecting."""
    from gpt_tui.backends.openai.client import normalise_base_url  # httpx: only for a URL

    try:
        normalise_base_url(url.split("#", 1)[0])
    except BackendError as exc:
        raise InputError(str(exc)) from None  # not a failure to connect: nothing was tried


@contextlib.contextmanager
def _named(name: str) -> Iterator[None]:
    """A path given as the model that is not a model (or not a usable one) is a bad argument;
    the same error for a catalog model means its cache is damaged (a failure, exit code 1)."""
    try:
        yield
    except ModelFileError as exc:
        try:
            given_path = describe(name).kind in ("path", "store")
        except GptTuiError:
            given_path = True  # the name itself is what is wrong
        if given_path:
            raise InputError(str(exc)) from exc
        raise


def _say_plan(model: Any) -> None:
    """One line when loading measured this machine's kernel plan (once), or ignored a kept one."""

    plan = plan_of(model)
    if plan is None:
        return
    if plan.notice:
        stderr.print(f"warning: {plan.notice}", markup=False)
    elif plan.just_measured:
        stderr.print(
            f"[measured this machine's kernel plan in {plan.measured_s:.1f} s; "
            f"{plan.source.removeprefix('measured, ')}, reused from now on]",
            style="dim",
            markup=False,
        )


def _remember_model(name: str) -> None:
    """Make this model the default for the next run; a read-only config only costs a warning."""

    name = model_setting(name)  # a server's URL without credentials written into it
    settings, _ = load_settings()
    if settings.model != name:
        try:
            save_settings(settings.replace(model=name))
        except GptTuiError as exc:
            stderr.print(f"warning: {exc}", markup=False)


def token_pieces(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    """Each token's share of the text, as streamed output shows it: a character split over
    tokens is whole on the token that completes it, "" on the ones before."""
    if not hasattr(tokenizer, "stream_decoder"):
        return [tokenizer.token_text(i) for i in ids]
    decoder = tokenizer.stream_decoder()
    pieces = [decoder.push(i) for i in ids]
    if pieces:
        pieces[-1] += decoder.flush()  # bytes that never completed a character, as U+FFFD
    return pieces


def show_piece(piece: str, token_id: int, tokenizer: Any) -> str:
    """A token's piece for a table (rich markup): a token that only starts a character shows
    its bytes, dimmed, rather than a replacement character."""
    if piece or not hasattr(tokenizer, "token_bytes"):
        return show_token(piece)
    return f"[dim]bytes {tokenizer.token_bytes(token_id).hex(' ').upper()}[/]"


def show_alternative(token_id: int, text: str, tokenizer: Any) -> str:
    """A token the model considered, alone (rich markup): part of a character shows its bytes,
    dimmed, rather than a replacement character."""
    if "\ufffd" not in text or not hasattr(tokenizer, "token_bytes"):
        return show_token(text)
    try:
        return show_token(tokenizer.token_bytes(token_id).decode("utf-8"))
    except UnicodeDecodeError:
        return f"[dim]bytes {tokenizer.token_bytes(token_id).hex(' ').upper()}[/]"


def show_token(text: str) -> str:
    from rich.markup import escape

    return escape(visible_token(text))


@contextlib.contextmanager
def rich_download_progress() -> Iterator[Callable[[DownloadProgress], None]]:
    """A progress callback for `ensure_model`/`load_model` that draws rich progress bars
    (bytes, rate, time left) on stderr, so stdout stays free for generated text.

    Nothing is drawn until the first event: a cached model loads without any output. Use:
    `with rich_download_progress() as progress: loaded = load_model(name, progress=progress)`.
    """
    progress: Progress | None = None
    tasks: dict[tuple[str, str, str], TaskID] = {}
    lock = threading.Lock()  # the callback may come from a worker thread

    def callback(event: DownloadProgress) -> None:
        nonlocal progress
        with lock:
            if event.phase == "done":
                return
            if progress is None:
                progress = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(bar_width=24),
                    _AmountColumn(),
                    _RateColumn(),
                    TimeRemainingColumn(elapsed_when_finished=True),
                    console=stderr,
                )
                progress.start()
            if event.phase == "wait":
                progress.console.print(
                    f"waiting for another gpt-tui process to finish {event.model}...",
                    markup=False,
                )
                return
            key = (event.model, event.phase, event.file)
            if key not in tasks:
                # Created at `done`, not 0: bytes resumed from an earlier run are no speed.
                if event.phase == "download":
                    description = f"{event.file} ({event.file_index}/{event.file_count})"
                    unit = "bytes"
                else:
                    description, unit = f"converting {event.model}", "tensors"
                tasks[key] = progress.add_task(
                    description, total=event.total, completed=event.done, unit=unit
                )
            progress.update(tasks[key], completed=event.done, total=event.total)

    try:
        yield callback
    finally:
        if progress is not None:
            progress.stop()


class _AmountColumn(ProgressColumn):
    """Bytes for a download ("12.3/497.8 MB"), tensors for a conversion ("40/148 tensors")."""

    def __init__(self) -> None:
        super().__init__()
        self._bytes = DownloadColumn()

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "bytes")
        if unit == "bytes":
            return self._bytes.render(task)
        total = "?" if task.total is None else f"{task.total:.0f}"
        return Text(f"{task.completed:.0f}/{total} {unit}", style="progress.download")


class _RateColumn(ProgressColumn):
    """Bytes per second for a download; nothing for a conversion or before it is measured."""

    def __init__(self) -> None:
        super().__init__()
        self._speed = TransferSpeedColumn()

    def render(self, task: Task) -> Text:
        known = task.finished_speed or task.speed  # None for a file that was already there
        if task.fields.get("unit") != "bytes" or known is None:
            return Text("")
        return self._speed.render(task)
