"""LM Studio's model folders: `~/.lmstudio/models` (LM Studio 0.3 and later) and
`~/.cache/lm-studio/models` (earlier), each `PUBLISHER/REPO/FILE.gguf`."""

from __future__ import annotations

from pathlib import Path

from gpt_tui.models.stores.found import Found, gguf_files

STORE = "LM Studio"


def roots() -> list[Path]:
    home = Path.home()
    return [home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"]


def lm_studio_files() -> Found:
    found = Found()
    for root in roots():
        found.add(gguf_files(STORE, root))
    return found
