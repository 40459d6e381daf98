"""Fixtures for the app's tests: a private GPT_TUI_HOME, fixed settings, models loaded once."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpt_tui.engine import SamplingParams
from gpt_tui.models import loading
from gpt_tui.settings import UserSettings, save_settings

_loaded: dict[str, loading.LoadedModel] = {}


@pytest.fixture(autouse=True)
def gpt_tui_home(tmp_path, monkeypatch):
    """Every app test gets its own config and cache; no test reaches the network."""
    home = tmp_path / "home"
    monkeypatch.setenv("GPT_TUI_HOME", str(home))
    monkeypatch.setenv("GPT_TUI_GPT2_URL", "http://127.0.0.1:9/never-used")
    # The kernel plan is measured in tests/engine; here it would only add seconds and toasts.
    monkeypatch.setenv("GPT_TUI_PLAN", "default")
    return home


@pytest.fixture
def deterministic_settings(gpt_tui_home):
    """Greedy decoding with a fixed seed and few tokens: the same output on every run."""
    sampling = SamplingParams(temperature=0.0, seed=1, max_tokens=24)
    save_settings(UserSettings(sampling=sampling))
    return sampling


@pytest.fixture(autouse=True)
def load_each_model_once(monkeypatch):
    """The app loads models through `loading.load_model`; reading the same tiny model (and parsing
    its 50k-token tokenizer) for every test would cost seconds. Loading itself is tested in
    tests/models and, with failures and downloads, in test_app_models."""
    real = loading.load_model

    def load_model(name, **kwargs):
        key = str(name)
        if not Path(key).is_dir():
            return real(name, **kwargs)
        if key not in _loaded:
            _loaded[key] = real(name, **kwargs)
        return _loaded[key]

    monkeypatch.setattr(loading, "load_model", load_model)
