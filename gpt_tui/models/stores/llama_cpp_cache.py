"""llama.cpp's download cache (`llama-cli -hf ORG/REPO` puts its GGUF files there):
`LLAMA_CACHE`, else `~/.cache/llama.cpp` (`$XDG_CACHE_HOME/llama.cpp` when that is set)."""

from __future__ import annotations

import os
from pathlib import Path

from gpt_tui.models.stores.found import Found, gguf_files

STORE = "llama.cpp"


def root() -> Path:
    if os.environ.get("LLAMA_CACHE"):
        return Path(os.environ["LLAMA_CACHE"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "llama.cpp"


def llama_cpp_files() -> Found:
    return gguf_files(STORE, root())
