"""Where gpt-tui keeps its files: platformdirs' user directories, or `$GPT_TUI_HOME` when set.

With `GPT_TUI_HOME=/x`: models in `/x/cache/models`, settings in `/x/config`, kernel plans in
`/x/cache/plans`. Without it, the platform's own places (`~/.cache/gpt-tui`, `~/.config/gpt-tui`
on Linux). Every layer reads these (the engine its kernel plans, the model store its cache, the
settings their file), so they live at the package's root.

`cache_root` only names a place; every other function creates its directory where it can, so
callers can write at once. A place that cannot be a directory (a file in the way) is a
`StorageError` naming it and the variable that moves it; one that only cannot be written (a
read-only home, a full disk) is returned all the same, so that listing and loading what is
already there still work. Writability is checked only where gpt-tui writes (`ensure_writable`),
and the error says which case it is.
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


# A location that only cannot be written: what is there can still be read (listed, loaded).
_CANNOT_WRITE = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT}


def storage_error(path: Path, exc: OSError) -> StorageError:
    """A `StorageError` for a failed write under `path`: which case it is (a read-only file
    system, a full disk, a permission), what fixes that case, and how to move gpt-tui's files."""
    current = os.environ.get(HOME_ENV, "").strip()
    variable = f"{HOME_ENV} (now {current})" if current else HOME_ENV
    elsewhere = f"set {variable} to a writable directory"
    cases = {
        errno.EROFS: f"it is on a read-only file system; {elsewhere}",
        errno.ENOSPC: (
            f"disk full (no space left on its disk); free some space, or {elsewhere} on "
            "another disk"
        ),
        errno.EDQUOT: f"your disk quota is used up; free some space, or {elsewhere}",
        errno.EACCES: f"permission denied; make it writable for this user, or {elsewhere}",
        errno.EPERM: f"operation not permitted; make it writable for this user, or {elsewhere}",
        errno.ENOTDIR: f"a parent of it is a file, not a directory; {elsewhere}",
        errno.EEXIST: f"it exists and is not a directory; {elsewhere}",
    }
    reason = cases.get(exc.errno) or f"{exc.strerror or exc}; {elsewhere}"
    return StorageError(f"cannot write to {path}: {reason}")


def ensure_writable(path: Path) -> Path:
    """Create `path` and check that files can be created in it by creating one: `os.access`
    says yes to root even on a read-only mount."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise storage_error(path, exc) from exc
    return path


def _ensure_dir(path: Path) -> Path:
    """Create `path` where it can be. A place that only cannot be written (a read-only file
    system, a full disk, no permission) is returned all the same: reading it finds what is
    there (nothing, if it was never made), and a write says why it fails (`ensure_writable`).
    A place that cannot be a directory at all (a file in the way) is an error at once."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno not in _CANNOT_WRITE:
            raise storage_error(path, exc) from exc
    if path.exists() and not path.is_dir():
        raise storage_error(path, OSError(errno.EEXIST, "not a directory"))
    return path
