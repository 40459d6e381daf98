"""Random GPT-2 weights of any shape: for tests, and for benchmarks that need no download."""

from __future__ import annotations

from typing import Any

import numpy as np

from gpt_tui.engine.blocked import BLOCK, BlockedMatrix, blocks_shape, float32_arena
from gpt_tui.engine.params import Params


def random_gpt2_params(
    hparams: dict[str, Any], seed: int = 0, scale: float = 0.02, *, streaming: bool = False
) -> Params:
    """Weights ~ N(0, scale) (GPT-2's own init scale by default), layer-norm gains near 1.

    `streaming` returns them in the engine's layout (`gpt2.streaming_params`), every matrix
    drawn in place, in blocks, in one allocation: the memory and speed of a converted model
    once loaded, with no plain copy beside it (a benchmark's peak-memory figure stays honest).
    """
    rng = np.random.default_rng(seed)
    n_vocab, n_ctx, n_embd = hparams["n_vocab"], hparams["n_ctx"], hparams["n_embd"]
    n_layer = hparams["n_layer"]
    shapes = [(n_embd, 3 * n_embd), (n_embd, n_embd), (n_embd, 4 * n_embd), (4 * n_embd, n_embd)]
    # The embedding table (last) is large enough to get huge pages on its own.
    places = iter(
        [*float32_arena([blocks_shape(*shape) for shape in shapes] * n_layer), None]
        if streaming
        else []
    )

    def normal(*shape: int, out: np.ndarray | None = None) -> np.ndarray:
        out = rng.standard_normal(shape, dtype=np.float32, out=out)
        out *= np.float32(scale)
        return out

    def norm() -> dict[str, np.ndarray]:
        return {"g": 1.0 + normal(n_embd), "b": normal(n_embd)}

    def matrix(n_in: int, n_out: int) -> np.ndarray | BlockedMatrix:
        if not streaming:
            return normal(n_in, n_out)
        blocks = normal(*blocks_shape(n_in, n_out), out=next(places))
        blocks[-1, :, n_out - (blocks.shape[0] - 1) * BLOCK :] = 0.0  # the padding, if any
        return BlockedMatrix(blocks, n_out)

    def dense(n_in: int, n_out: int) -> dict[str, Any]:
        return {"w": matrix(n_in, n_out), "b": normal(n_out)}

    blocks = [
        {
            "ln_1": norm(),
            "attn": {"c_attn": dense(*shapes[0]), "c_proj": dense(*shapes[1])},
            "ln_2": norm(),
            "mlp": {"c_fc": dense(*shapes[2]), "c_proj": dense(*shapes[3])},
        }
        for _ in range(n_layer)
    ]
    embedding = (
        {"wte_t": matrix(n_embd, n_vocab)} if streaming else {"wte": matrix(n_vocab, n_embd)}
    )
    return {**embedding, "wpe": normal(n_ctx, n_embd), "blocks": blocks, "ln_f": norm()}
