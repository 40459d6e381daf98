"""A real HTTP server on 127.0.0.1 that speaks a small OpenAI-compatible API, and misbehaves on
request: error statuses with messages, streams cut mid-answer, malformed events and JSON, a
server that lies about prompt scores, a stalled stream. A real server, not a mock of the client:
the client's HTTP, SSE parsing, timeouts and connection handling are what these tests test.

Its "model" writes PIECES in order; at each step the written piece has probability 0.6 and the
two alternatives 0.2 and 0.1 (so they sum to 0.9). An echo splits text into words (a piece is a
word with the space before it) and scores each after the first with the same 0.6, so a truthful
echo agrees with the generation logprobs.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from loopback import Loopback

PIECES = [" Paris", ".", " It", " is", " big", "."]
LP_TOKEN, LP_ALT1, LP_ALT2 = math.log(0.6), math.log(0.2), math.log(0.1)
ALTERNATIVES = (" London", " Rome")


def split_words(text: str) -> list[str]:
    return re.findall(r"\s*\w+|\s*[^\w\s]|\s+", text)


@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None
    body: dict[str, Any] | None


@dataclass
class FakeOpenAIServer:
    """Fault knobs (each off by default):

    - `status`: answer every request with (code, message) instead;
    - `drop_after`: in a stream, send this many token events, then close the socket;
    - `malformed_event_after`: in a stream, send this many events, then `data: {not json`;
    - `models_body`: the raw body of GET /v1/models (e.g. HTML);
    - `lie`: echo logprobs are wrong by this many nats;
    - `stall_after` / `stall_seconds`: in a stream, send this many events, then wait;
    - `over_one`: alternatives whose probabilities sum to more than 1;
    - `done_without_finish`: end the stream with [DONE] and no finish reason;
    - `reject_logprobs`: answer 400 to any request for logprobs (as some servers do);
    - `answer_after`: wait this many seconds before answering anything (an overloaded server).
    `owned_by` names its model's owner in /v1/models ("llamacpp" says llama-server).
    """

    status: tuple[int, str] | None = None
    drop_after: int | None = None
    malformed_event_after: int | None = None
    models_body: str | None = None
    lie: float = 0.0
    stall_after: int | None = None
    stall_seconds: float = 0.0
    over_one: bool = False
    done_without_finish: bool = False
    reject_logprobs: bool = False
    answer_after: float = 0.0
    owned_by: str = "tests"  # "llamacpp": a llama-server, to the client's detection
    seen: list[Seen] = field(default_factory=list)
    disconnects: int = 0  # streams the client left before their end

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._loopback = Loopback(_Handler, self)

    @property
    def url(self) -> str:
        return f"{self._loopback.root}/v1"

    def close(self) -> None:
        self._loopback.close()

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def posts(self, path: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.method == "POST" and s.path == path]

    # --- the "model" -----------------------------------------------------------------------

    def top(self, piece: str) -> list[tuple[str, float]]:
        alt1 = LP_ALT1 if not self.over_one else math.log(0.5)
        return [(piece, LP_TOKEN), (ALTERNATIVES[0], alt1), (ALTERNATIVES[1], LP_ALT2)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def handle(self) -> None:
        # the client closing a kept-alive connection is what these tests do on purpose
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            super().handle()

    @property
    def owner(self) -> FakeOpenAIServer:
        return self.server.owner  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self._handle(None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        self._handle(body)

    def _handle(self, body: dict[str, Any] | None) -> None:
        owner = self.owner
        owner.record(Seen(self.command, self.path, self.headers.get("Authorization"), body))
        if owner.answer_after:
            time.sleep(owner.answer_after)
        if owner.status is not None:
            code, message = owner.status
            headers = {"Retry-After": "7"} if code == 429 else {}
            if code >= 500:
                return self._send(code, message.encode(), "text/plain", headers)
            return self._json(code, {"error": {"message": message, "type": "error"}}, headers)
        if self.path == "/v1/models":
            if owner.models_body is not None:
                return self._send(200, owner.models_body.encode(), "text/html")
            return self._json(
                200,
                {"object": "list", "data": [{"id": "fake-model", "owned_by": owner.owned_by}]},
            )
        if owner.reject_logprobs and body and (body.get("logprobs") or body.get("top_logprobs")):
            return self._json(400, {"error": {"message": "logprobs are not supported"}})
        if self.path == "/v1/completions" and body is not None:
            return self._completion(body)
        if self.path == "/v1/chat/completions" and body is not None:
            return self._chat(body)
        if self.path == "/completion" and body is not None:
            return self._llama_server_step(body)
        self._json(404, {"error": {"message": f"no route {self.path}"}})

    # --- answers ---------------------------------------------------------------------------

    def _completion(self, body: dict[str, Any]) -> None:
        owner = self.owner
        n_top = int(body.get("logprobs") or 0)
        max_tokens = int(body.get("max_tokens") or 16)
        pieces = PIECES[:max_tokens]
        finish = "length" if max_tokens <= len(PIECES) else "stop"
        if body.get("echo"):
            prompt = str(body.get("prompt", ""))
            words = split_words(prompt) + pieces
            values: list[float | None] = [None] + [LP_TOKEN - owner.lie] * (len(words) - 1)
            tops: list[dict[str, float] | None] = [None] + [
                dict(owner.top(w)[:n_top]) for w in words[1:]
            ]
            return self._json(200, {"choices": [{
                "text": prompt + "".join(pieces), "index": 0, "finish_reason": finish,
                "logprobs": {"tokens": words, "token_logprobs": values, "top_logprobs": tops,
                             "text_offset": _offsets(words)},
            }], "usage": {"prompt_tokens": len(words) - len(pieces)}})  # fmt: skip
        if not body.get("stream"):
            logprobs = None
            if n_top:
                logprobs = {
                    "tokens": pieces,
                    "token_logprobs": [LP_TOKEN] * len(pieces),
                    "top_logprobs": [dict(owner.top(p)[:n_top]) for p in pieces],
                    "text_offset": _offsets(pieces),
                }
            return self._json(200, {"choices": [{
                "text": "".join(pieces), "index": 0, "finish_reason": finish, "logprobs": logprobs,
            }]})  # fmt: skip
        events = []
        for p in pieces:
            logprobs = None
            if n_top:
                top = [dict(owner.top(p)[:n_top])]
                logprobs = {"tokens": [p], "token_logprobs": [LP_TOKEN], "top_logprobs": top}
            events.append(
                {"choices": [{"text": p, "index": 0, "finish_reason": None, "logprobs": logprobs}]}
            )
        if not owner.done_without_finish:
            events.append(
                {"choices": [{"text": "", "index": 0, "finish_reason": finish, "logprobs": None}]}
            )
        self._stream(events)

    def _llama_server_step(self, body: dict[str, Any]) -> None:
        """llama-server's /completion with n_probs, as its README documents the answer: the
        next piece's `completion_probabilities`, before sampling (`top_logprobs`, logprob) or,
        with `post_sampling_probs`, after it (`top_probs`, prob). This "sampling chain" is
        top-k over the three pieces it knows (0 = all), renormalised."""
        n = int(body.get("n_probs") or 0)
        top = self.owner.top(PIECES[0])[:n]

        def entry(text: str, key: str, value: float) -> dict[str, Any]:
            return {"id": PIECES.index(text) if text in PIECES else 100 + len(text),
                    "token": text, "bytes": list(text.encode()), key: value}  # fmt: skip

        if body.get("post_sampling_probs"):
            k = int(body.get("top_k") or 0)
            kept = top[:k] if k > 0 else top
            total = sum(math.exp(lp) for _, lp in kept)
            probs = [entry(t, "prob", math.exp(lp) / total) for t, lp in kept]
            row = {**entry(PIECES[0], "prob", probs[0]["prob"]), "top_probs": probs}
        else:
            row = {**entry(PIECES[0], "logprob", LP_TOKEN),
                   "top_logprobs": [entry(t, "logprob", lp) for t, lp in top]}  # fmt: skip
        self._json(200, {"content": PIECES[0], "stop": True, "completion_probabilities": [row]})

    def _chat(self, body: dict[str, Any]) -> None:
        max_tokens = int(body.get("max_tokens") or 16)
        n_top = int(body.get("top_logprobs") or 0) if body.get("logprobs") else 0
        pieces = ["Hello", "!", " How", " are", " you", "?"][:max_tokens]
        finish = "length" if max_tokens <= 6 else "stop"

        def content(p: str) -> dict[str, Any]:
            return {"token": p, "logprob": LP_TOKEN, "bytes": list(p.encode()),
                    "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())}
                                     for t, lp in self.owner.top(p)[:n_top]]}  # fmt: skip

        if not body.get("stream"):
            return self._json(200, {"choices": [{
                "index": 0, "finish_reason": finish,
                "message": {"role": "assistant", "content": "".join(pieces)},
                "logprobs": {"content": [content(p) for p in pieces]} if n_top else None,
            }]})  # fmt: skip
        events: list[dict[str, Any]] = [{"choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
        for p in pieces:
            events.append({"choices": [{
                "index": 0, "delta": {"content": p}, "finish_reason": None,
                "logprobs": {"content": [content(p)]} if n_top else None,
            }]})  # fmt: skip
        events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        self._stream(events)

    # --- transport -------------------------------------------------------------------------

    def _stream(self, events: list[dict[str, Any]]) -> None:
        owner = self.owner
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for i, event in enumerate(events):
                if owner.drop_after is not None and i == owner.drop_after:
                    self._write_chunk(b'data: {"choices": [{"te')  # half an event, then gone
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if owner.malformed_event_after is not None and i == owner.malformed_event_after:
                    self._write_chunk(b"data: {not json\n\n")
                    break
                if owner.stall_after is not None and i == owner.stall_after:
                    time.sleep(owner.stall_seconds)
                self._write_chunk(b": keep-alive\n\n" if i == 1 else b"")
                self._write_chunk(f"data: {json.dumps(event)}\n\n".encode())
                time.sleep(0.01)
            self._write_chunk(b"data: [DONE]\n\n")
            self._end_chunks()
        except (BrokenPipeError, ConnectionResetError):
            with owner._lock:
                owner.disconnects += 1
            self.close_connection = True

    def _write_chunk(self, data: bytes) -> None:
        if data:  # an empty chunk would end the chunked body
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _json(self, code: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(code, json.dumps(payload).encode(), "application/json", headers)

    def _send(
        self, code: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


def _offsets(pieces: list[str]) -> list[int]:
    out, at = [], 0
    for p in pieces:
        out.append(at)
        at += len(p)
    return out
