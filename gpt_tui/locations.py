"""Where gpt-tui keeps its files: platformdirs' user directories, or `$GPT_TUI_HOME` when set.

With `GPT_TUI_HOME=/x`: models in `/x/cache/models`, settings in `/x/config`, kernel plans in
`/x/cache/plans`. Without it, the platform's own places (`~/.cache/gpt-tui`, `~/.config/gpt-tui`
on Linux). Every layer reads these (the engine its kernel plans, the model store its cache, the
settings their file), so they live at the package's root.

`cache_root` only names a place; every other function creates its directory, so callers can
write at once; a location that cannot be created is a `StorageError` naming the directory and the
variable that moves it. Writability is checked only where gpt-tui writes (`ensure_writable`): a
read-only cache still serves the models already in it.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import platformdirs

from gpt_tui.errors import StorageError

HOME_ENV = "GPT_TUI_HOME"
APP_NAME = "gpt-tui"


def home_override() -> Path | None:
    value = os.environ.get(HOME_ENV, "").strip()
    return Path(value).expanduser() if value else None


def cache_root() -> Path:
    """`$GPT_TUI_HOME/cache`, or the platform's user cache directory for gpt-tui (not created)."""
    override = home_override()
    if override is not None:
        return override / "cache"
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def home() -> Path:
    """`$GPT_TUI_HOME`, or the platform's user data directory for gpt-tui."""
    override = home_override()
    return _ensure_dir(override or Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)))


def cache_dir() -> Path:
    return _ensure_dir(cache_root())


def models_dir() -> Path:
    """Converted models (`models/124M/`), downloads in progress and their locks."""
    return _ensure_dir(cache_dir() / "models")


def config_dir() -> Path:
    override = home_override()
    if override is not None:
        return _ensure_dir(override / "config")
    return _ensure_dir(Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)))


def storage_error(path: Path, exc: OSError) -> StorageError:
    """A `StorageError` for a failed write under `path`, saying how to move gpt-tui's files."""
    reasons = {
        errno.ENOSPC: "disk full",
        errno.EROFS: "read-only file system",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOTDIR: "a parent is not a directory",
        errno.EEXIST: "exists and is not a directory",
    }
    reason = reasons.get(exc.errno, exc.strerror or str(exc))
    current = os.environ.get(HOME_ENV, "").strip()
    variable = f"{HOME_ENV} (now {current})" if current else HOME_ENV
    return StorageError(
        f"cannot write to {path}: {reason}; free some space or fix the permissions, "
        f"or set {variable} to a writable directory"
    )


def ensure_writable(path: Path) -> Path:
    """Check that files can be created in `path` by creating one: `os.access` says yes to root
    even on a read-only mount."""
    try:
        with tempfile.TemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise storage_error(path, exc) from exc
    return path


def _ensure_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(path, exc) from exc
    if not path.is_dir():
        raise storage_error(path, OSError(errno.ENOTDIR, "not a directory"))
    return path
