"""Messages the app's workers post from their threads to the UI thread.

`post_message` is thread-safe; every message names the run or load it belongs to, so the app can
drop the late words of a worker it has already replaced.
"""

from __future__ import annotations

from textual.message import Message

from gpt_tui.models.download import DownloadProgress as Progress
from gpt_tui.playground.core import Loaded
from gpt_tui.playground.events import RunEvent


class RunUpdate(Message):
    """An event of a playground run (gpt_tui/playground/events.py), from its worker thread."""

    def __init__(self, event: RunEvent) -> None:
        self.event = event
        super().__init__()


class DownloadProgress(Message):
    """Progress of getting model load `load_id` ready (download, conversion)."""

    def __init__(self, load_id: int, progress: Progress) -> None:
        super().__init__()
        self.load_id = load_id
        self.progress = progress


class LoadEnded(Message):
    """How a model load ended (`Playground.load`'s result), from its worker thread."""

    def __init__(self, loaded: Loaded) -> None:
        super().__init__()
        self.loaded = loaded
