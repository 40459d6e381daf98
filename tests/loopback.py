"""The HTTP servers tests run on 127.0.0.1 (never elsewhere): a threaded server on a free port
whose handler reaches the test's server object as `self.server.owner`, and the handler base of
the servers that hand out files (with the faults a download must survive)."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Loopback:
    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        owner: object,
        server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer,
    ) -> None:
        self.httpd = server_class(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = owner  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def root(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


class FileHandler(BaseHTTPRequestHandler):
    """HEAD and GET answered by `serve(body)`; bodies sent whole, throttled, or cut short."""

    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_HEAD(self) -> None:
        self.serve(body=False)

    def do_GET(self) -> None:
        self.serve(body=True)

    def serve(self, body: bool) -> None:
        raise NotImplementedError

    def empty(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def send_body(self, payload: bytes, drop: int | None, bytes_per_second: float | None) -> None:
        """The body (headers already sent): `drop` bytes of it and then the connection closed,
        as a flaky network does, when `drop` is given; in steps of 1/20 s at `bytes_per_second`
        when throttled. A client that hung up ends it quietly."""
        if drop is not None:
            payload = payload[:drop]
        step = len(payload) if bytes_per_second is None else int(bytes_per_second / 20)
        try:
            for offset in range(0, len(payload), max(step, 1)):
                self.wfile.write(payload[offset : offset + step])
                if bytes_per_second is not None:
                    self.wfile.flush()
                    time.sleep(step / bytes_per_second)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return
        if drop is not None:  # vanish mid-file: the client sees fewer bytes than promised
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True


def closed_port_url() -> str:
    """The URL of a port on 127.0.0.1 that nothing listens on: a server that is not there."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"
