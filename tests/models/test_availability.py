"""Which model opens when none is named: the last one used if it loads without a network."""

from __future__ import annotations

from pathlib import Path

from gpt_tui.settings import UserSettings, default_model_name, save_settings


def test_default_model_is_the_last_used_if_ready_else_smollm2(tmp_path: Path) -> None:
    assert default_model_name() == "smollm2"  # no settings yet
    save_settings(UserSettings(model="355M"))  # used once, since removed from the cache
    assert default_model_name() == "smollm2"
    save_settings(UserSettings(model="no-such-model"))
    assert default_model_name() == "smollm2"
    save_settings(UserSettings(model=str(tmp_path)))  # a path that exists
    assert default_model_name() == str(tmp_path)
