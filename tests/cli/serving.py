"""`gpt-tui serve` as a process, for the tests: started on a free port, answering before a test
goes on, stopped afterwards."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

START_SECONDS = 60  # a bound for a loaded CI machine; it answers in about a second here


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(
    *flags: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen, str]]:
    """The server process (its stderr readable) and its page's URL on 127.0.0.1."""
    port = free_port()
    argv = [sys.executable, "-m", "gpt_tui", "serve", "--port", str(port), *flags]
    server = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:  # until it answers, or has died
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert server.poll() is None, f"gpt-tui serve ended: {server.stderr.read()}"
                assert time.monotonic() < deadline, "gpt-tui serve did not answer"
                time.sleep(0.1)
        yield server, url
    finally:
        server.terminate()
        server.wait(timeout=30)
