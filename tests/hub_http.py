"""The Hugging Face Hub in miniature: a real HTTP server on 127.0.0.1 answering the requests
huggingface_hub makes (read from its source: `HfApi.model_info`, `get_hf_file_metadata`,
`http_get`), for `HF_ENDPOINT` to point at.

    GET  /api/models/ORG/NAME/revision/REV    {"id", "sha", "siblings": [{"rfilename", "size"}]}
    HEAD /ORG/NAME/resolve/REV/FILE           X-Repo-Commit, ETag, Content-Length
    GET  /ORG/NAME/resolve/REV/FILE           the bytes; `Range: bytes=N-` answers 206

Unknown repos answer 404 with `X-Error-Code: RepoNotFound`, unknown files `EntryNotFound`, as
the Hub does. Fault knob: `drop_after[FILE] = n` sends n bytes of the body, then closes the
connection (once); `bytes_per_second` throttles bodies (a download to cancel midway).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from loopback import FileHandler, Loopback

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    authorization: str | None


@dataclass
class HubServer:
    """`repos` maps "ORG/NAME" to {file name: bytes}."""

    repos: dict[str, dict[str, bytes]]
    commit: str = COMMIT
    drop_after: dict[str, int] = field(default_factory=dict)
    bytes_per_second: float | None = None
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._loopback = Loopback(_Handler, self, _QuietServer)

    @staticmethod
    def files_of(directory: Path) -> dict[str, bytes]:
        """A model directory's files, as a repo serves them."""
        return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}

    @property
    def url(self) -> str:
        return self._loopback.root

    def gets(self, file: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method == "GET" and r.path.endswith(f"/{file}")]

    def close(self) -> None:
        self._loopback.close()

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hung up mid-answer (cancelled on purpose): not worth a traceback


class _Handler(FileHandler):
    def serve(self, body: bool) -> None:
        hub: HubServer = self.server.owner  # type: ignore[attr-defined]
        path = unquote(urlsplit(self.path).path)
        hub._record(
            Request(
                self.command, path, self.headers.get("Range"), self.headers.get("Authorization")
            )
        )
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            self._model_info(hub, "/".join(parts[2:4]))
        elif len(parts) >= 5 and parts[2] == "resolve":
            self._file(hub, "/".join(parts[:2]), "/".join(parts[4:]), body)
        else:
            self.empty(404, {"X-Error-Code": "RepoNotFound"})

    def _model_info(self, hub: HubServer, repo_id: str) -> None:
        files = hub.repos.get(repo_id)
        if files is None:
            self.empty(404, {"X-Error-Code": "RepoNotFound"})
            return
        siblings = [{"rfilename": name, "size": len(data)} for name, data in files.items()]
        payload = json.dumps({"id": repo_id, "sha": hub.commit, "siblings": siblings}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _file(self, hub: HubServer, repo_id: str, name: str, body: bool) -> None:
        files = hub.repos.get(repo_id)
        if files is None:
            self.empty(404, {"X-Error-Code": "RepoNotFound"})
            return
        data = files.get(name)
        if data is None:
            self.empty(404, {"X-Error-Code": "EntryNotFound"})
            return
        start = 0
        range_header = self.headers.get("Range")
        if range_header:
            start = int(range_header.removeprefix("bytes=").partition("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("X-Repo-Commit", hub.commit)
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if not body:
            return
        self.send_body(data[start:], hub.drop_after.pop(name, None), hub.bytes_per_second)
