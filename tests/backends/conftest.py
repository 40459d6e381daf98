"""Fixtures for the remote backend: a misbehaving OpenAI-compatible server on 127.0.0.1, and a
real one (llama-cpp-python's, with the bundled SmolLM2: `llama_server`, in tests/conftest.py,
shared with the playground's and the app's tests), started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_openai_server import FakeOpenAIServer


@pytest.fixture
def fake() -> Iterator[FakeOpenAIServer]:
    server = FakeOpenAIServer()
    yield server
    server.close()
