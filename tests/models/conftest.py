"""The model store's tests each get a private GPT_TUI_HOME (tests/conftest.py's `gpt_home`)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def private_home(gpt_home: Path) -> Path:
    return gpt_home
