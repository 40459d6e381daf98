"""The models' tests each get a private GPT_TUI_HOME (tests/conftest.py's `gpt_home`), and
`gpt2_url` points the catalog's downloads at the test server."""

from __future__ import annotations

from pathlib import Path

import pytest
from http_server import FileServer


@pytest.fixture(autouse=True)
def private_home(gpt_home: Path) -> Path:
    return gpt_home


@pytest.fixture
def gpt2_url(server: FileServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("GPT_TUI_GPT2_URL", server.url)
    return server.url
