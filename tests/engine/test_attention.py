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


@pytest.mark.parametrize("n_diagonal", [0, 5])
def test_peaked_scores_give_no_subnormal_weights(n_diagonal: int) -> None:
    """Scores 200 apart would give weights below float32's normal range (each a slow microcode
    assist on Intel cores); they are floored at exp(EXP_FLOOR), masked keys stay exact zeros,
    and the output still equals the definition."""
    rng = np.random.default_rng(7)
    group, n_key, head_dim = 2, 40, 8
    rows = max(n_diagonal, 1) * group
    scores = rng.uniform(-200, 0, (rows, n_key)).astype(np.float32)
    if n_diagonal:
        scores[:, -n_diagonal:] += attention._diagonal_mask(n_diagonal, group)
    values = rng.standard_normal((n_key, head_dim), dtype=np.float32)
    expected = np.exp(scores.astype(np.float64) - scores.max(-1, keepdims=True))
    expected = (expected / expected.sum(-1, keepdims=True)) @ values
    out = np.empty((rows, head_dim), dtype=np.float32)
    attention._weights_times_values(scores, values, out, n_diagonal, group)
    weights = scores  # overwritten with the unnormalised weights
    tiny = np.finfo(np.float32).tiny
    assert not np.any((weights > 0) & (weights < tiny))
    assert weights.min() >= 0
    if n_diagonal:
        masked = attention._diagonal_mask(n_diagonal, group) == -np.inf
        assert np.all(weights[:, -n_diagonal:][masked] == 0.0)
    np.testing.assert_allclose(out, expected, atol=1e-6)
