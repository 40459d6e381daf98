"""Random GPT-2 weights of any shape: for tests, and for benchmarks that need no download."""

from __future__ import annotations

from typing import Any

import numpy as np

from gpt_tui.engine.blocked import BLOCK, BlockedMatrix, n_blocks
from gpt_tui.engine.params import Params


def random_gpt2_params(
    hparams: dict[str, Any], seed: int = 0, scale: float = 0.02, *, streaming: bool = False
) -> Params:
    """Weights ~ N(0, scale) (GPT-2's own init scale by default), layer-norm gains near 1.

    `streaming` returns them in the engine's layout (`gpt2.streaming_params`), each matrix
    converted as soon as it is drawn: the memory a converted model takes once loaded, without
    a plain copy of every weight beside it (a benchmark's peak-memory figure stays honest).
    """
    rng = np.random.default_rng(seed)
    n_vocab, n_ctx, n_embd = hparams["n_vocab"], hparams["n_ctx"], hparams["n_embd"]

    def normal(*shape: int) -> np.ndarray:
        out = rng.standard_normal(shape, dtype=np.float32)
        out *= np.float32(scale)
        return out

    def norm() -> dict[str, np.ndarray]:
        return {"g": 1.0 + normal(n_embd), "b": normal(n_embd)}

    def matrix(n_in: int, n_out: int) -> np.ndarray | BlockedMatrix:
        w = normal(n_in, n_out)
        return BlockedMatrix.from_matrix(w) if streaming else w

    def dense(n_in: int, n_out: int) -> dict[str, Any]:
        return {"w": matrix(n_in, n_out), "b": normal(n_out)}

    blocks = [
        {
            "ln_1": norm(),
            "attn": {"c_attn": dense(n_embd, 3 * n_embd), "c_proj": dense(n_embd, n_embd)},
            "ln_2": norm(),
            "mlp": {"c_fc": dense(n_embd, 4 * n_embd), "c_proj": dense(4 * n_embd, n_embd)},
        }
        for _ in range(hparams["n_layer"])
    ]
    if streaming:  # drawn in blocks: no plain copy of the largest matrix beside them
        table = normal(n_blocks(n_vocab), n_embd, BLOCK)  # [n_blocks, n_embd, BLOCK]
        table[-1, :, n_vocab - (table.shape[0] - 1) * BLOCK :] = 0.0  # the padding
        embedding = {"wte_t": BlockedMatrix(table, n_vocab)}  # [n_embd, n_vocab]
    else:
        embedding = {"wte": normal(n_vocab, n_embd)}
    return {**embedding, "wpe": normal(n_ctx, n_embd), "blocks": blocks, "ln_f": norm()}
