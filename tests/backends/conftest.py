"""Fixtures for the remote backend: a misbehaving OpenAI-compatible server on 127.0.0.1, and a
real one (llama-cpp-python's, with the bundled SmolLM2), started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_openai_server import FakeOpenAIServer
from llama_cpp_server import LlamaCppServer, start_llama_cpp_server


@pytest.fixture
def fake() -> Iterator[FakeOpenAIServer]:
    server = FakeOpenAIServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LlamaCppServer]:
    server = start_llama_cpp_server()
    yield server
    server.stop()
