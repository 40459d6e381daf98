"""HTTP to one OpenAI-compatible server: JSON requests and streamed answers (server-sent events).

Every failure becomes one `BackendError` line that says what happened and what to do, with the
server's own message where it sent one. The API key goes only into the Authorization header of
requests to the URL the user gave; it is never part of a message, a log line or a repr.

httpx rather than requests: its streamed reads return whatever bytes have arrived (requests'
`iter_lines` waits for a full chunk of bytes on an answer without chunked encoding), its timeouts
are per phase (connect, and read = the longest wait for the next bytes, i.e. between events), and
leaving the `with client.stream(...)` block closes the connection of an unfinished answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from gpt_tui import __version__
from gpt_tui.backends.openai.sse import DONE, iter_sse_data
from gpt_tui.errors import BackendError

MAX_MESSAGE = 300  # characters of a server's error message we show


class ConnectionLost(BackendError):
    """A streamed answer stopped before its end: what arrived before stays valid."""


@dataclass(frozen=True)
class Timeouts:
    """Seconds. `read` bounds the wait for the next bytes of an answer: between two streamed
    events, or for a whole non-streamed answer's first byte (a long prompt is read before the
    first token comes, so it is generous). `probe` bounds each request of the capability probe."""

    connect: float = 5.0
    read: float = 60.0
    probe: float = 20.0


def normalise_base_url(url: str) -> str:
    """`http://host:port/v1` as given, without a trailing slash; `/v1` is added when the path is
    empty (a server's root), since every OpenAI-compatible server serves its API there."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BackendError(f"not a server URL: {url!r}; give one like http://127.0.0.1:8000/v1")
    path = parts.path.rstrip("/")
    if not path:
        path = "/v1"
    return f"{parts.scheme}://{parts.netloc}{path}"


class ServerClient:
    """JSON and streams to `base_url` (e.g. http://127.0.0.1:8000/v1), with an optional key.

    A path without a leading slash is under the base URL (`completions` -> .../v1/completions);
    one with a leading slash is on the server's root (`/tokenize`, `/props`): some servers keep
    their extras there. Either way the request goes to the host and port the user gave, only.
    """

    def __init__(
        self, base_url: str, api_key: str | None = None, timeouts: Timeouts | None = None
    ) -> None:
        url = normalise_base_url(base_url)
        parts = urlsplit(url)
        # credentials in the URL (http://user:pass@host/v1) become basic auth and leave the URL,
        # which is shown, named in sessions and put in messages
        auth = None
        if parts.username is not None or parts.password is not None:
            auth = httpx.BasicAuth(unquote(parts.username or ""), unquote(parts.password or ""))
        netloc = parts.netloc.rpartition("@")[2]
        self.base_url = f"{parts.scheme}://{netloc}{parts.path}"
        self.root = f"{parts.scheme}://{netloc}"
        self.timeouts = timeouts or Timeouts()
        headers = {"User-Agent": f"gpt-tui/{__version__}", "Accept-Encoding": "identity"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._secrets = [x for x in (api_key, parts.password and unquote(parts.password)) if x]
        # trust_env=False: no proxy from the environment, so a request goes to this URL only;
        # no redirects followed, for the same reason
        self._http = httpx.Client(
            headers=headers, auth=auth, trust_env=False, follow_redirects=False
        )
        self.last_headers: dict[str, str] = {}

    def __repr__(self) -> str:  # never the key
        return f"ServerClient({self.base_url!r})"

    def url(self, path: str) -> str:
        return f"{self.root}{path}" if path.startswith("/") else f"{self.base_url}/{path}"

    def close(self) -> None:
        self._http.close()

    # --- requests --------------------------------------------------------------------------

    def get_json(self, path: str, timeout: float | None = None) -> Any:
        return self._json("GET", path, None, timeout)

    def post_json(self, path: str, body: dict[str, Any], timeout: float | None = None) -> Any:
        return self._json("POST", path, body, timeout)

    def _timeout(self, read: float | None) -> httpx.Timeout:
        read = self.timeouts.read if read is None else read
        return httpx.Timeout(connect=self.timeouts.connect, read=read, write=read, pool=read)

    def _json(self, method: str, path: str, body: dict[str, Any] | None, timeout: float | None):
        url = self.url(path)
        for attempt in (1, 2):
            try:
                response = self._http.request(
                    method, url, json=body, timeout=self._timeout(timeout)
                )
                break
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                # a kept-alive connection the server had closed (uvicorn does after 5 s idle):
                # once more on a fresh one
                if attempt == 2:
                    raise self._transport_error(exc, url, read=timeout) from None
            except httpx.HTTPError as exc:
                raise self._transport_error(exc, url, read=timeout) from None
        self.last_headers = dict(response.headers)
        if response.status_code >= 400:
            raise self._status_error(response.status_code, response.text, path)
        if 300 <= response.status_code < 400:
            where = response.headers.get("Location", "elsewhere")
            raise BackendError(
                self._redact(
                    f"{path}: the server redirects to {where}; give that URL if you trust it"
                )
            )
        return self._parse(response.text, path)

    def stream(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """POST `body` with `stream: true`; yields each event's JSON object until `[DONE]`.

        Closing the iterator closes the connection (the server sees the client go and stops).
        A stream cut short raises `ConnectionLost` after the events that did arrive.
        """
        url = self.url(path)
        n_events = 0
        for attempt in (1, 2):
            answered = False
            try:
                with self._http.stream(
                    "POST", url, json={**body, "stream": True}, timeout=self._timeout(None)
                ) as response:
                    answered = True
                    self.last_headers = dict(response.headers)
                    if response.status_code >= 400:
                        response.read()
                        raise self._status_error(response.status_code, response.text, path)
                    for data in iter_sse_data(response.iter_lines()):
                        if data.strip() == DONE:
                            return
                        event = self._event(data, path)
                        n_events += 1
                        yield event
                break
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                if answered or attempt == 2:  # only a stale kept-alive connection is retried
                    raise self._transport_error(exc, url, True, n_events) from None
            except httpx.HTTPError as exc:
                raise self._transport_error(exc, url, True, n_events) from None
        if n_events == 0:
            # Some servers (llama-cpp-python) fail after answering 200 to a stream, with an
            # empty body; the same request unstreamed gets their error message.
            self._json("POST", path, {**body, "stream": False}, None)
        raise ConnectionLost(
            f"stopped: connection lost (the server ended the answer without [DONE] after "
            f"{n_events} events)"
        )

    def _event(self, data: str, path: str) -> dict[str, Any]:
        event = self._parse(data, path, streaming=True)
        if isinstance(event, dict) and "error" in event:
            raise BackendError(
                self._redact(f"stopped: the server reported an error: {_message(event)}")
            )
        if not isinstance(event, dict):
            raise BackendError(
                f"stopped: the server sent an event that is not a JSON object: {_clip(data)}"
            )
        return event

    # --- errors ----------------------------------------------------------------------------

    def _parse(self, text: str, path: str, streaming: bool = False) -> Any:
        try:
            return json.loads(text)
        except ValueError:
            what = "sent a malformed event" if streaming else f"answered {path} with no JSON"
            prefix = "stopped: " if streaming else ""
            raise BackendError(self._redact(f"{prefix}the server {what}: {_clip(text)}")) from None

    def _status_error(self, status: int, text: str, path: str) -> BackendError:
        try:
            message = _message(json.loads(text))
        except ValueError:
            message = _clip(text.strip().splitlines()[0] if text.strip() else "")
        reason = httpx.codes.get_reason_phrase(status) or "error"
        said = f": {message}" if message else ""
        hint = {
            401: "; check --api-key or OPENAI_API_KEY",
            403: "; check --api-key or OPENAI_API_KEY",
            404: f"; is {self.base_url} the server's API URL (it usually ends in /v1)?",
            429: "; the server is busy or a quota is used up: wait and try again",
        }.get(status, "; the server failed: try again, or look at its log" if status >= 500 else "")
        return BackendError(
            self._redact(f"{path}: the server answered {status} {reason}{said}{hint}")
        )

    def _transport_error(
        self,
        exc: httpx.HTTPError,
        url: str,
        streaming: bool = False,
        n_events: int = 0,
        read: float | None = None,
    ) -> BackendError:
        read = self.timeouts.read if read is None else read
        where = self.root
        if isinstance(exc, httpx.ConnectTimeout):
            return BackendError(
                f"{where} did not accept a connection within {self.timeouts.connect:g} s; "
                "is the server running and the URL right?"
            )
        if isinstance(exc, httpx.ConnectError):
            return BackendError(
                f"cannot reach {where} ({_short(exc)}); is the server running and the URL right?"
            )
        if isinstance(exc, httpx.ReadTimeout):
            if streaming and n_events:
                return ConnectionLost(
                    f"stopped: the server sent nothing for {read:g} s (after {n_events} events)"
                )
            return BackendError(f"{where} did not answer within {read:g} s; it may be overloaded")
        if isinstance(exc, httpx.TimeoutException):
            return BackendError(f"{where} timed out ({type(exc).__name__})")
        if streaming:
            return ConnectionLost(f"stopped: connection lost ({_short(exc)})")
        return BackendError(self._redact(f"{url}: {_short(exc)}"))

    def _redact(self, message: str) -> str:
        """A server may echo what it was sent; the key never reaches the user's screen."""
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return message


def _message(payload: Any) -> str:
    """The human part of an error body: OpenAI's {"error": {"message"}}, or the variants other
    servers send ({"error": "..."}, {"detail": ...}, {"message": ...})."""
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, str):
            return _clip(error)
        if isinstance(error, dict):
            for key in ("message", "detail", "msg"):
                if key in error:
                    value = error[key]
                    if isinstance(value, list):  # FastAPI's validation errors
                        value = "; ".join(
                            str(v.get("msg", v)) if isinstance(v, dict) else str(v) for v in value
                        )
                    return _clip(str(value))
    return _clip(json.dumps(payload))


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def _short(exc: Exception) -> str:
    return _clip(str(exc) or type(exc).__name__)
