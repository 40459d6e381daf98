"""Models behind OpenAI-compatible servers (vLLM, llama.cpp's llama-server, llama-cpp-python,
Ollama, OpenAI): `connect(url, api_key)` gives a `backends.base.Backend`.

One module per concern: `sse` and `client` (HTTP, server-sent events, errors), `servers` (the
kinds of server and the request fields each reads), `vocab` (ids for the token pieces a server
sends), `logprobs` (its log probabilities -> probability, rank, entropy, alternatives), `probe`
(what a server can really do, tried when connecting), `capabilities` (those findings for the
core, the app and the CLI), `summary` (them in words), `stream` (a streamed answer ->
TokenEvents), `parallel` (compare columns) and `backend` (the Backend itself, and `connect`).
"""

from __future__ import annotations

import os

from gpt_tui.backends.openai.backend import (
    OpenAIBackend,
    RemoteModel,
    connect,
    list_models,
)
from gpt_tui.backends.openai.capabilities import capabilities_of
from gpt_tui.backends.openai.client import ConnectionLost, ServerClient, Timeouts
from gpt_tui.backends.openai.servers import KINDS
from gpt_tui.backends.openai.summary import describe, status_line
from gpt_tui.models.names import is_remote as is_server_url  # one rule for what a URL is

API_KEY_VARIABLE = "OPENAI_API_KEY"


def api_key(given: str | None = None) -> str | None:
    """The key to send: `--api-key` when given, else OPENAI_API_KEY, else none."""
    return given or os.environ.get(API_KEY_VARIABLE) or None


def models_at(url: str, key: str | None = None) -> list[RemoteModel]:
    """The models a server lists at /v1/models (for the app's model picker)."""
    client = ServerClient(url, key)
    try:
        return list_models(client)
    finally:
        client.close()


__all__ = [
    "API_KEY_VARIABLE",
    "KINDS",
    "ConnectionLost",
    "OpenAIBackend",
    "RemoteModel",
    "ServerClient",
    "Timeouts",
    "api_key",
    "capabilities_of",
    "connect",
    "describe",
    "is_server_url",
    "list_models",
    "models_at",
    "status_line",
]
