"""Which backend a model name asks for, and opening it (in a worker: it may download)."""

from __future__ import annotations

import threading
from typing import Any

from gpt_tui.backends import openai as remote
from gpt_tui.backends.base import Backend
from gpt_tui.backends.local import LocalBackend
from gpt_tui.models.loading import load_model
from gpt_tui.models.names import is_remote


def open_backend(
    name: str,
    *,
    progress: Any = None,
    cancel: threading.Event | None = None,
    base_url: str | None = None,
    strict: bool = False,
    api_key: str | None = None,
) -> Backend:
    """The backend for `name`: a local model (catalog name, path; downloaded and converted
    first if need be, reporting `progress`) or a remote server. `strict` (the CLI): a setting
    asked for that cannot be honoured (a draft model that does not fit) fails the run, where
    the app tells it and goes on without. `api_key`: a server's key (else OPENAI_API_KEY); it
    is sent to that server only, and kept nowhere else."""
    if is_remote(name):
        return remote.connect(name, remote.api_key(api_key))

    loaded = load_model(name, base_url=base_url, progress=progress, cancel=cancel)
    return LocalBackend(loaded, strict=strict)
