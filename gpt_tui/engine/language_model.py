"""What generation, scoring and speculation need of a model: `GPT2` and `Llama` both are one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from gpt_tui.engine.kv_cache import KVCache


class LanguageModel(Protocol):
    n_vocab: int
    n_ctx: int

    def new_cache(self, n_batch: int = 1, n_ctx: int | None = None) -> KVCache: ...

    def forward(
        self,
        ids: Sequence[int] | np.ndarray,
        cache: KVCache | None = None,
        *,
        last_only: bool = False,
    ) -> np.ndarray: ...
