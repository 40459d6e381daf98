"""Attention under every plan: tiles and shared heads against a plain masked softmax."""

from __future__ import annotations

import numpy as np
import pytest

from gpt_tui.engine import attention, cores
from gpt_tui.engine.cores import Settings


def reference(q: np.ndarray, keys: np.ndarray, values: np.ndarray, n_seq: int, group: int):
    """The definition, in float64: row s*group+g of a kv head sees keys 0..n_past+s."""
    n_key = keys.shape[2]
    scores = q.astype(np.float64) @ keys.astype(np.float64).swapaxes(-1, -2)
    position = np.repeat(np.arange(n_seq), group)[:, None] + (n_key - n_seq)  # [rows, 1]
    scores = np.where(np.arange(n_key)[None, :] <= position, scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return weights @ values


# Up to 42 positions under the default tile take the few-positions path (every head at once);
# 130 positions and the small tiles take the tiled one.
@pytest.mark.parametrize("n_seq,n_past", [(1, 0), (1, 37), (7, 0), (13, 5), (40, 3), (130, 2)])
@pytest.mark.parametrize("group", [1, 3])
@pytest.mark.parametrize(
    "settings",
    [
        Settings(),
        Settings(query_tile=1),
        Settings(query_tile=6),
        Settings(
            attention_min_keys=0,
            attention_parts=2,
            query_tile=4,
            prefill_attention_parts=3,
        ),
    ],
    ids=["whole", "tile 1", "tile 6", "shared"],
)
def test_attention_equals_its_definition(
    n_seq: int, n_past: int, group: int, settings: Settings
) -> None:
    rng = np.random.default_rng(n_seq * 100 + n_past + group)
    n_batch, n_kv_head, head_dim = 2, 3, 8
    n_key = n_past + n_seq
    q = rng.standard_normal((n_batch, n_kv_head, n_seq * group, head_dim), dtype=np.float32)
    keys = rng.standard_normal((n_batch, n_kv_head, n_key, head_dim), dtype=np.float32)
    values = rng.standard_normal((n_batch, n_kv_head, n_key, head_dim), dtype=np.float32)
    cores.activate(settings)
    try:
        out = attention.attend(q, keys, values, n_seq, group)
    finally:
        cores.activate(Settings())
    assert out.shape == q.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, reference(q, keys, values, n_seq, group), atol=1e-5)
