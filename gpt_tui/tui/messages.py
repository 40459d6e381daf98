"""Messages the app's workers post from their threads to the UI thread.

`post_message` is thread-safe; every message names the run or load it belongs to, so the app can
drop the late words of a worker it has already replaced.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message

from gpt_tui.models.download import DownloadProgress as Progress
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


class ModelLoaded(Message):
    def __init__(self, load_id: int, name: str, loaded: Any) -> None:
        super().__init__()
        self.load_id = load_id
        self.name = name  # as the user asked for it (catalog name or path)
        self.loaded = loaded  # gpt_tui.models.loading.LoadedModel


class ModelLoadFailed(Message):
    def __init__(self, load_id: int, name: str, error: str, cancelled: bool = False) -> None:
        super().__init__()
        self.load_id = load_id
        self.name = name
        self.error = error
        self.cancelled = cancelled


class PromptCounted(Message):
    """The prompt's token count, measured off the UI thread for edit `version`."""

    def __init__(self, version: int, n_prompt: int, n_context: int) -> None:
        super().__init__()
        self.version = version
        self.n_prompt = n_prompt  # tokens of the text in the editor
        self.n_context = n_context  # tokens the next generation starts from (chat: whole chat)
