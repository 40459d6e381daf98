from __future__ import annotations

import os
from pathlib import Path

import pytest

from gpt_tui import locations
from gpt_tui.errors import StorageError


def test_gpt_tui_home_holds_cache_models_and_config(gpt_home: Path) -> None:
    assert locations.home() == gpt_home
    assert locations.cache_dir() == gpt_home / "cache"
    assert locations.models_dir() == gpt_home / "cache" / "models"
    assert locations.config_dir() == gpt_home / "config"
    for directory in (locations.cache_dir(), locations.models_dir(), locations.config_dir()):
        assert directory.is_dir()


def test_without_gpt_tui_home_the_platform_dirs_are_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GPT_TUI_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    assert locations.models_dir() == tmp_path / "xdg-cache" / "gpt-tui" / "models"
    assert locations.config_dir() == tmp_path / "xdg-config" / "gpt-tui"


def test_home_below_a_regular_file_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fails for root too, unlike chmod: nothing can be created below a regular file.
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("GPT_TUI_HOME", str(tmp_path / "a-file" / "home"))
    with pytest.raises(StorageError) as info:
        locations.models_dir()
    message = str(info.value)
    assert str(tmp_path / "a-file" / "home") in message and "GPT_TUI_HOME" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 555; see the test above")
def test_an_unwritable_home_is_named_but_only_a_write_fails(gpt_home: Path) -> None:
    # (a read-only file system, a full disk and a home root cannot write: tests/cli/test_models.py)
    gpt_home.mkdir()
    gpt_home.chmod(0o555)
    try:
        models = locations.models_dir()  # listing what is there needs no write
        assert models == gpt_home / "cache" / "models" and not models.exists()
        with pytest.raises(StorageError) as info:
            locations.ensure_writable(models)
        assert "GPT_TUI_HOME" in str(info.value) and "permission denied" in str(info.value)
    finally:
        gpt_home.chmod(0o755)


def test_ensure_writable_really_writes(tmp_path: Path) -> None:
    assert locations.ensure_writable(tmp_path) == tmp_path
    assert list(tmp_path.iterdir()) == []  # the probe leaves nothing behind
    assert locations.ensure_writable(tmp_path / "new" / "dir").is_dir()  # made, to write in
    (tmp_path / "a-file").write_text("")
    with pytest.raises(StorageError, match="a parent of it is a file.*GPT_TUI_HOME"):
        locations.ensure_writable(tmp_path / "a-file" / "dir")
