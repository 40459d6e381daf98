"""Progress of getting a model ready: download (bytes, rate, time left), conversion, waiting."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, ProgressBar, Static

from gpt_tui.display import human_bytes, human_duration
from gpt_tui.models.download import DownloadProgress


def describe(p: DownloadProgress) -> str:
    """One line for a progress report (no timings that change between identical runs except
    the rate and time left, which are the point)."""
    if p.phase == "wait":
        return f"Waiting for another gpt-tui process that is getting {p.model} ready…"
    if p.phase == "convert":
        total = f"/{p.total}" if p.total else ""
        return f"Converting {p.model}: tensor {p.done}{total}"
    if p.phase == "done":
        return f"{p.model} is ready; loading…"
    parts = [f"Downloading {p.model}: {p.file} ({p.file_index}/{p.file_count})"]
    parts.append(f"{human_bytes(p.done)} / {human_bytes(p.total)}")
    if p.rate > 0:
        parts.append(f"{human_bytes(p.rate)}/s")
    if p.eta is not None:
        parts.append(f"{human_duration(p.eta)} left")
    return " · ".join(parts)


class DownloadPanel(Vertical):
    """Shown while a model is fetched or converted; its button cancels."""

    DEFAULT_CSS = """
    DownloadPanel {
        height: auto;
        padding: 0 1;
        background: $boost;
    }
    DownloadPanel > Horizontal {
        height: 1;
    }
    DownloadPanel #download-bar {
        width: 1fr;
    }
    DownloadPanel #download-bar Bar {
        width: 1fr;
    }
    """

    class CancelPressed(Message):
        pass

    def compose(self) -> ComposeResult:
        yield Static("", id="download-label")
        with Horizontal():
            yield ProgressBar(total=None, show_eta=False, id="download-bar")
            yield Button("Cancel", id="download-cancel", variant="error", compact=True)

    showing = False  # a load's progress is shown (the panel may still hide a replaced one's)

    def on_mount(self) -> None:
        self.display = False  # until a load has something to wait for

    def start(self, model: str) -> None:
        self.showing = True
        self.query_one("#download-label", Static).update(f"Getting {model} ready…")
        self.query_one("#download-bar", ProgressBar).update(total=None, progress=0)
        self.display = True

    def update_progress(self, p: DownloadProgress) -> None:
        self.query_one("#download-label", Static).update(describe(p))
        self.query_one("#download-bar", ProgressBar).update(total=p.total or None, progress=p.done)

    def report(self, p: DownloadProgress) -> None:
        """Show a load's progress: the panel appears once there is something to wait for (a
        download, a conversion, another process); a model already here loads without it."""
        if p.phase == "done":  # at 100% with nothing more to show: the status says what follows
            self.stop()
            return
        if p.phase not in ("download", "convert", "wait"):
            return
        if not self.showing:
            self.start(p.model)
        self.update_progress(p)

    def new_load(self) -> None:
        """A new load begins: its first report starts the panel afresh."""
        self.showing = False

    def show_cancelling(self) -> None:
        self.query_one("#download-label", Static).update("Cancelling…")

    def stop(self) -> None:
        self.showing = False
        self.display = False

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.CancelPressed())
