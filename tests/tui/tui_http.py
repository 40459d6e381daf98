"""A small HTTP server on 127.0.0.1 standing in for OpenAI's bucket: every file missing (404),
or every file endless and slow (a download to cancel or quit in the middle of)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler

from loopback import Loopback


class ModelServer:
    def __init__(self, mode: str) -> None:
        self.mode = mode  # "missing" or "slow"
        self.requests: list[str] = []
        self.disconnected = threading.Event()  # a slow download's client went away
        self._loopback = Loopback(_Handler, self)

    @property
    def url(self) -> str:
        return self._loopback.root

    def close(self) -> None:
        self._loopback.close()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:
        server: ModelServer = self.server.owner  # type: ignore[attr-defined]
        server.requests.append(self.path)
        if server.mode == "missing":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 30))
        self.end_headers()
        try:
            for _ in range(100_000):
                self.wfile.write(b"\0" * 4096)
                self.wfile.flush()
                time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            server.disconnected.set()
