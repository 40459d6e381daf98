"""The base directories gpt-tui keeps files in, before any is created: `$GPT_TUI_HOME` when set,
else the platform's user directories. A leaf module, so the engine (its kernel plans) and the
model store (`gpt_tui.models.paths`, which creates and checks them) read the same places."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

HOME_ENV = "GPT_TUI_HOME"
APP_NAME = "gpt-tui"


def home_override() -> Path | None:
    value = os.environ.get(HOME_ENV, "").strip()
    return Path(value).expanduser() if value else None


def cache_root() -> Path:
    """`$GPT_TUI_HOME/cache`, or the platform's user cache directory for gpt-tui."""
    override = home_override()
    if override is not None:
        return override / "cache"
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))
