"""A real HTTP server on 127.0.0.1 for download tests: serves files from memory like Azure blob
storage does (Range, Content-MD5 and, on ranged answers, x-ms-blob-content-md5), and misbehaves
on request (dropped connections, a wrong MD5, ignored Range, 5xx answers, a slow link).
"""

from __future__ import annotations

import base64
import hashlib
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from loopback import FileHandler, Loopback


@dataclass
class Request:
    method: str
    path: str
    range: str | None


@dataclass
class FileServer:
    """`files` maps URL paths ("/124M/hparams.json") to their bytes. Fault knobs:

    - `drop_after[path] = n`: send n bytes of the body, then close the connection (once);
    - `wrong_md5`: paths whose MD5 headers are wrong;
    - `ignore_range`: answer every request with the whole file (200);
    - `fail[path] = [503, ...]`: answer these statuses first, one per request;
    - `bytes_per_second`: throttle bodies.
    """

    files: dict[str, bytes]
    drop_after: dict[str, int] = field(default_factory=dict)
    wrong_md5: set[str] = field(default_factory=set)
    ignore_range: bool = False
    fail: dict[str, list[int]] = field(default_factory=dict)
    bytes_per_second: float | None = None
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._loopback = Loopback(_Handler, self)

    @property
    def url(self) -> str:
        return self._loopback.root

    def gets(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method == "GET" and r.path == path]

    def close(self) -> None:
        self._loopback.close()

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)


class _Handler(FileHandler):
    def serve(self, body: bool) -> None:
        server: FileServer = self.server.owner  # type: ignore[attr-defined]
        path = urlsplit(self.path).path
        range_header = self.headers.get("Range")
        server._record(Request(self.command, path, range_header))

        failures = server.fail.get(path)
        if failures:
            self.empty(failures.pop(0))
            return
        data = server.files.get(path)
        if data is None:
            self.empty(404)
            return
        md5 = hashlib.md5(b"not the file" if path in server.wrong_md5 else data).digest()
        md5_b64 = base64.b64encode(md5).decode()

        start, end = 0, len(data) - 1
        if range_header and not server.ignore_range:
            first, _, last = range_header.removeprefix("bytes=").partition("-")
            start = int(first)
            end = min(int(last), end) if last else end
            if start >= len(data):
                self.empty(416, {"Content-Range": f"bytes */{len(data)}"})
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.send_header("x-ms-blob-content-md5", md5_b64)
        else:
            self.send_response(200)
            self.send_header("Content-MD5", md5_b64)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        if not body:
            return

        drop = server.drop_after.pop(path, None)
        self.send_body(data[start : end + 1], drop, server.bytes_per_second)
