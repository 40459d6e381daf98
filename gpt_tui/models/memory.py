"""Whether a model fits in memory, asked before converting or loading it: the kernel's OOM
killer ends a process without a word, so a model too large is refused first, with the figures.

What a model needs, as gpt-tui runs it: its weights as float32, plus the kv cache of a long
conversation (the cache grows with the text, up to the context; `KV_POSITIONS` of it is
counted). Converting a GGUF holds more at its peak (`CONVERSION_FACTOR`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpt_tui.display import human_bytes
from gpt_tui.errors import NotEnoughMemoryError

MEMINFO = Path("/proc/meminfo")
KV_POSITIONS = 4096
#: Measured: converting SmolLM2's GGUF peaks at 2.7 times its float32 weights (the dequantized
#: tensors, the engine's fused and transposed copies, and the stored layout's, briefly at once).
CONVERSION_FACTOR = 3


def available_bytes() -> int | None:
    """The memory the kernel can give without swapping (MemAvailable), None where unknown (no
    /proc: then nothing is refused)."""
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # "MemAvailable:  21385496 kB"
    except (OSError, ValueError, IndexError):
        pass
    return None


def kv_cache_bytes(hparams: dict[str, Any], positions: int = KV_POSITIONS) -> int:
    """Float32 keys and values of every layer for `positions` (at most the context)."""
    n_kv_head = hparams.get("n_kv_head", hparams.get("n_head", 0))
    head_dim = hparams.get("head_dim") or hparams.get("n_embd", 0) // max(
        hparams.get("n_head", 1), 1
    )
    n = min(positions, hparams.get("n_ctx", positions))
    return 2 * hparams.get("n_layer", 0) * n_kv_head * head_dim * n * 4


def check_fits(what: str, needed: int, detail: str = "", available: int | None = None) -> None:
    """Refuse (NotEnoughMemoryError, with the figures) when `needed` bytes exceed what is
    available; `available` defaults to `available_bytes()`."""
    available = available_bytes() if available is None else available
    if available is None or needed <= available:
        return
    detail = f" ({detail})" if detail else ""
    raise NotEnoughMemoryError(
        f"{what} needs {human_bytes(needed)} as float32{detail}; "
        f"{human_bytes(available)} available: close other programs, or pick a smaller model"
    )
