"""Causal attention over the cached keys and values, shared by GPT-2 and the LLaMA family.

Queries come grouped by the kv head they read (GPT-2: one query head per kv head; grouped-query
models: `group` of them), with the rows of one kv head ordered position-major:
q [n_batch, n_kv_head, n_seq * group, head_dim], row s * group + g is position s of query head
kv * group + g. Keys and values [n_batch, n_kv_head, n_key, head_dim] hold the cached prefix and
the new positions, which are the last n_seq of the n_key.

A prompt's attention is computed a tile of positions at a time (the plan's `query_tile`): each
tile's scores [.., tile * group, n_key] stay small enough to stay in cache through the softmax's
passes, each tile reads only the keys up to its own last position (the masked half beyond is
skipped, not computed and then masked), and only the tile's diagonal block needs the mask.
Measured on SmolLM2 shapes, a 6,144-token prompt spent 21.5 of 28 s in attention, 11 s of it in
the softmax over whole-chunk scores [n_head, 256, n_key] that no cache held.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from gpt_tui.engine import cores


def attend(
    q: np.ndarray, keys: np.ndarray, values: np.ndarray, n_seq: int, group: int
) -> np.ndarray:
    """softmax(q @ keys^T + causal mask) @ values -> [n_batch, n_kv_head, n_seq*group, head_dim].

    q is already scaled by 1/sqrt(head_dim). The work is shared between the cores by kv heads
    when the plan says so (decode: from `attention_min_keys` keys on; prefill:
    `prefill_attention_parts`); otherwise BLAS keeps the thread count the pass's products set.
    """
    settings = cores.active()
    n_batch, n_kv_head, n_rows, head_dim = q.shape
    n_key = keys.shape[2]
    out = np.empty((n_batch, n_kv_head, n_rows, head_dim), dtype=np.float32)
    if n_seq == 1:
        min_keys = settings.attention_min_keys
        shared = min_keys is not None and n_key >= min_keys
        parts = settings.attention_parts if shared else 1

        def work(a: int, b: int) -> None:
            _decode(q[:, a:b], keys[:, a:b], values[:, a:b], out[:, a:b])
    else:
        parts, tile = settings.prefill_attention_parts, settings.query_tile

        def work(a: int, b: int) -> None:
            _prefill(q[:, a:b], keys[:, a:b], values[:, a:b], out[:, a:b], n_seq, group, tile)

    if parts > 1 and n_kv_head > 1:
        cores.set_blas_threads(1)  # the heads are shared by our threads instead
        cores.run_parts([lambda a=a, b=b: work(a, b) for a, b in cores.ranges(n_kv_head, parts)])
    else:
        work(0, n_kv_head)
    return out


def _decode(q: np.ndarray, keys: np.ndarray, values: np.ndarray, out: np.ndarray) -> None:
    """One position per kv head's query rows: q [n_b, n_kv, group, head_dim]."""
    # keys @ q^T (q^T contiguous) reads the cached keys in their stored order, where
    # q @ keys^T makes BLAS stride across them (at 900 keys: 50 us a layer against 140). The
    # scores are then made contiguous, or the softmax's reductions along the strided axis crawl.
    scores = keys @ np.ascontiguousarray(q.swapaxes(-1, -2))  # [n_b, n_kv, n_key, group]
    scores = np.ascontiguousarray(scores.swapaxes(-1, -2))  # [n_b, n_kv, group, n_key]
    _softmax_in_place(scores)  # [n_b, n_kv, group, n_key]
    np.matmul(scores, values, out=out)  # [n_b, n_kv, group, head_dim]


def _prefill(
    q: np.ndarray,
    keys: np.ndarray,
    values: np.ndarray,
    out: np.ndarray,
    n_seq: int,
    group: int,
    tile: int,
) -> None:
    """Several new positions, `tile` of them at a time; each sees the keys up to its own."""
    n_past = keys.shape[2] - n_seq  # cached positions before the new ones
    keys_t = keys.swapaxes(-1, -2)  # [n_b, n_kv, head_dim, n_key]
    for t0 in range(0, n_seq, tile):
        t1 = min(t0 + tile, n_seq)
        rows = slice(t0 * group, t1 * group)
        end = n_past + t1  # keys beyond the tile's last position are never looked at
        scores = q[:, :, rows] @ keys_t[..., :end]  # [n_b, n_kv, (t1-t0)*group, end]
        scores[..., end - (t1 - t0) :] += _diagonal_mask(t1 - t0, group)  # [.., rows, t1-t0]
        _softmax_in_place(scores)  # [n_b, n_kv, (t1-t0)*group, end]
        np.matmul(scores, values[:, :, :end], out=out[:, :, rows])  # [.., rows, head_dim]


@lru_cache(maxsize=64)
def _diagonal_mask(n: int, group: int) -> np.ndarray:
    """Additive mask [n*group, n] of a tile's own keys: row s*group+g sees keys 0..s."""
    allowed = np.arange(n)[None, :] <= np.arange(n)[:, None]  # [n, n]
    mask = np.where(allowed, np.float32(0.0), np.float32(-np.inf)).astype(np.float32)
    mask = np.repeat(mask, group, axis=0)  # [n*group, n]
    mask.flags.writeable = False
    return mask


def _softmax_in_place(x: np.ndarray) -> None:
    """Softmax over the last axis, in x's own buffer (masked -inf entries become exact zeros).

    The ufuncs' own reduce, not np.max / np.sum: their Python wrappers cost more than the
    reduction on a decode step's scores.
    """
    x -= np.maximum.reduce(x, axis=-1, keepdims=True)
    np.exp(x, out=x)
    x /= np.add.reduce(x, axis=-1, keepdims=True)
