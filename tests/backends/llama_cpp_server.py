"""llama-cpp-python's OpenAI-compatible server with the bundled SmolLM2 GGUF, on 127.0.0.1.

Started once per test session (loading takes a second or two; the first request a few more).
Skips with the reason when `llama_cpp` cannot be imported: `make test` installs it (the test
extra), so a skip means a hand-made environment.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gpt_tui.models.bundled import smollm2_gguf_path

N_CTX = 1024
START_TIMEOUT = 180.0  # seconds: a cold start on a loaded 2-core machine is slow


@dataclass
class LlamaCppServer:
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_llama_cpp_server() -> LlamaCppServer:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama_cpp is not importable: run `make test` (it installs llama-cpp-python)")
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="llama-cpp-server-")) / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(smollm2_gguf_path()),
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(N_CTX), "--n_threads", "2", "--n_threads_batch", "2",
        # compare columns and the probe send requests back to back: a waiting request must not
        # cut the one streaming (the server's default)
        "--interrupt_requests", "False",
        "--verbose", "False",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "NO_PROXY": "*"}
        )
    server = LlamaCppServer(process, port, log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"llama_cpp.server exited ({process.returncode}):\n{log.read_text()[-3000:]}"
            )
        try:
            if httpx.get(f"{server.url}/models", timeout=2.0, trust_env=False).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    server.stop()
    raise RuntimeError(
        f"llama_cpp.server did not start in {START_TIMEOUT:g} s:\n{log.read_text()[-3000:]}"
    )
