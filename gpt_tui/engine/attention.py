"""Causal attention over the cached keys and values, shared by GPT-2 and the LLaMA family.

Queries come grouped by the kv head they read (GPT-2: one query head per kv head; grouped-query
models: `group` of them), with the rows of one kv head ordered position-major:
q [n_batch, n_kv_head, n_seq * group, head_dim], row s * group + g is position s of query head
kv * group + g. Keys and values [n_batch, n_kv_head, n_key, head_dim] hold the cached prefix and
the new positions, which are the last n_seq of the n_key.

A prompt's attention is computed one kv head and a tile of the plan's `query_tile` positions at
a time. Each tile reads only the keys up to its own last position (the masked half beyond is
skipped, not computed and then masked), only its diagonal block needs the mask, and the
softmax's division is done on the output [rows, head_dim] instead of the scores [rows, n_key].
Everywhere, the weights are kept out of float32's subnormal range (`EXP_FLOOR`): peaked
attention otherwise runs several times slower on Intel cores.
The tile trades the matrix products' efficiency (larger is better: on the Intel host, one
head's 256 positions after 6,144 keys took 44 ms in tiles of 4, 20 ms in tiles of 32, 16.5 ms in
one tile) against the scores' staying in cache; the plan measures which wins. Before this, a
6,144-token SmolLM2 prompt spent 21.5 of 28 s in attention, 11 s of it in a softmax of four
passes over whole-chunk scores [n_head, 256, n_key] that no cache held.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from gpt_tui.engine import cores


def attend(
    q: np.ndarray, keys: np.ndarray, values: np.ndarray, n_seq: int, group: int
) -> np.ndarray:
    """softmax(q @ keys^T + causal mask) @ values -> [n_batch, n_kv_head, n_seq*group, head_dim].

    q is already scaled by 1/sqrt(head_dim). The work is shared between the cores when the plan
    says so (decode: by kv heads from `attention_min_keys` keys on; a prompt: its tiles, in
    `prefill_attention_parts`); otherwise BLAS keeps the thread count the pass's products set.
    A few positions whose scores fit in one tile are done in one go, every head together.
    """
    settings = cores.active()
    n_batch, n_kv_head, n_rows, head_dim = q.shape
    n_key = keys.shape[2]
    out = np.empty((n_batch, n_kv_head, n_rows, head_dim), dtype=np.float32)
    if n_seq == 1:
        min_keys = settings.attention_min_keys
        shared = min_keys is not None and n_key >= min_keys
        parts = min(settings.attention_parts if shared else 1, n_kv_head)
        if parts == 1:
            _decode(q, keys, values, out)
            return out
        cores.set_blas_threads(1)  # the heads are shared by our threads instead
        cores.run_parts([
            lambda a=a, b=b: _decode(q[:, a:b], keys[:, a:b], values[:, a:b], out[:, a:b])
            for a, b in cores.ranges(n_kv_head, parts)
        ])  # fmt: skip
        return out
    if n_batch * n_kv_head * n_seq <= settings.query_tile:
        _few_positions(q, keys, values, out, n_seq, group)
        return out
    # A prompt: its tiles (of every stream and kv head) dealt out to the parts in turn, so each
    # part gets tiles of every length (later ones see more keys), whatever the count of heads.
    tile = settings.query_tile
    tiles = [(b, h, t0) for b in range(n_batch) for h in range(n_kv_head)
             for t0 in range(0, n_seq, tile)]  # fmt: skip
    parts = min(settings.prefill_attention_parts, len(tiles))
    if parts > 1:
        cores.set_blas_threads(1)  # the tiles are shared by our threads instead

    def work(mine: list[tuple[int, int, int]]) -> None:
        # One buffer for every tile's scores: a fresh array per tile is fresh pages from the
        # kernel, whose faults serialise the cores sharing the work.
        scores = np.empty(min(tile, n_seq) * group * n_key, dtype=np.float32)
        for b, h, t0 in mine:
            _prefill_tile(q[b, h], keys[b, h], values[b, h], out[b, h], n_seq, group,
                          t0, min(t0 + tile, n_seq), scores)  # fmt: skip

    cores.run_parts([lambda p=p: work(tiles[p::parts]) for p in range(parts)])
    return out


def _decode(q: np.ndarray, keys: np.ndarray, values: np.ndarray, out: np.ndarray) -> None:
    """One position per kv head's query rows: q [n_b, n_kv, group, head_dim]."""
    # keys @ q^T (q^T contiguous) reads the cached keys in their stored order, where
    # q @ keys^T makes BLAS stride across them (at 900 keys: 50 us a layer against 140). The
    # scores are then made contiguous, or the softmax's reductions along the strided axis crawl.
    scores = keys @ np.ascontiguousarray(q.swapaxes(-1, -2))  # [n_b, n_kv, n_key, group]
    scores = np.ascontiguousarray(scores.swapaxes(-1, -2))  # [n_b, n_kv, group, n_key]
    _weights_times_values(scores, values, out, 0, 1)  # (nothing masked)


def _few_positions(
    q: np.ndarray, keys: np.ndarray, values: np.ndarray, out: np.ndarray, n_seq: int, group: int
) -> None:
    """A few new positions (a verifying pass, a short continuation): every stream and kv head
    at once. Their scores are no larger than one planned tile's, and one tile per head cost a
    dozen NumPy calls each: 6 ms of an 8-position pass of GPT-2 124M (0.8 ms for one position)
    went to 144 tiles of 8 rows."""
    scores = q @ keys.swapaxes(-1, -2)  # [n_b, n_kv, n_seq*group, n_key]
    scores[..., -n_seq:] += _diagonal_mask(n_seq, group)  # [n_b, n_kv, n_seq*group, n_seq]
    _weights_times_values(scores, values, out, n_seq, group)


def _prefill_tile(
    q: np.ndarray,
    keys: np.ndarray,
    values: np.ndarray,
    out: np.ndarray,
    n_seq: int,
    group: int,
    t0: int,
    t1: int,
    buffer: np.ndarray,
) -> None:
    """New positions t0..t1 of one kv head; each sees the keys up to its own. q and out
    [n_seq*group, head_dim], keys and values [n_key, head_dim]; `buffer` holds the scores."""
    end = keys.shape[0] - n_seq + t1  # keys beyond the tile's last position are never looked at
    rows = slice(t0 * group, t1 * group)
    scores = buffer[: (t1 - t0) * group * end].reshape((t1 - t0) * group, end)
    np.matmul(q[rows], keys[:end].T, out=scores)  # [(t1-t0)*group, end]
    scores[:, end - (t1 - t0) :] += _diagonal_mask(t1 - t0, group)  # [rows, t1-t0]
    _weights_times_values(scores, values[:end], out[rows], t1 - t0, group)


@lru_cache(maxsize=64)
def _diagonal_mask(n: int, group: int) -> np.ndarray:
    """Additive mask [n*group, n] of a tile's own keys: row s*group+g sees keys 0..s."""
    allowed = np.arange(n)[None, :] <= np.arange(n)[:, None]  # [n, n]
    mask = np.where(allowed, np.float32(0.0), np.float32(-np.inf)).astype(np.float32)
    mask = np.repeat(mask, group, axis=0)  # [n*group, n]
    mask.flags.writeable = False
    return mask


EXP_FLOOR = np.float32(-60.0)
"""Shifted scores are raised to this before exp, so no weight is below exp(-60) = 8.8e-27.
Below about exp(-87) exp gives subnormal floats, and products of weights near there with the
values do too; arithmetic on subnormals takes a microcode assist per element on Intel cores.
One layer's decode attention over 900 keys took 2.0 ms instead of 0.37 when 20% of its weights
were subnormal, and a prompt tile's scores @ values 80 times as long (Intel Xeon host); with
the floor, 0.32 ms however peaked the scores. It costs one pass over the scores: 9-14% of a
prompt's attention whose scores never needed it (SmolLM2 never did on the texts tried), the
price of never being several times slower. The weights' sum is at least 1 (the largest is
exp(0)), so raising weights to 8.8e-27 moves it by at most n_key * 8.8e-27, far below what a
float32 holds."""


def _shift_in_place(x: np.ndarray, n_diagonal: int, group: int) -> None:
    """x minus its rows' maxima, floored at EXP_FLOOR; masked (-inf) entries, in the last
    `n_diagonal` columns (`_diagonal_mask`), stay -inf, so their weight is an exact zero.

    The ufuncs' own reduce, not np.max: its Python wrapper costs more than the reduction on a
    decode step's scores."""
    x -= np.maximum.reduce(x, axis=-1, keepdims=True)
    if n_diagonal == 0:
        np.maximum(x, EXP_FLOOR, out=x)
        return
    bulk, diagonal = x[..., :-n_diagonal], x[..., -n_diagonal:]
    np.maximum(bulk, EXP_FLOOR, out=bulk)
    np.maximum(diagonal, _diagonal_floor(n_diagonal, group), out=diagonal)


@lru_cache(maxsize=64)
def _diagonal_floor(n: int, group: int) -> np.ndarray:
    """EXP_FLOOR where a tile's own keys are seen, -inf where they are masked: [n*group, n]."""
    floor = _diagonal_mask(n, group) + EXP_FLOOR
    floor.flags.writeable = False
    return floor


def _weights_times_values(
    scores: np.ndarray, values: np.ndarray, out: np.ndarray, n_diagonal: int, group: int
) -> None:
    """out = softmax(scores) @ values, the scores [..., rows, n_key] overwritten. The division
    is done on the output [..., rows, head_dim], fewer numbers than the scores, and after the
    product: weights divided first could fall below EXP_FLOOR again."""
    _shift_in_place(scores, n_diagonal, group)  # [..., rows, n_key]
    np.exp(scores, out=scores)  # [..., rows, n_key]  (masked keys: exact zeros)
    total = np.add.reduce(scores, axis=-1, keepdims=True)  # [..., rows, 1]
    np.matmul(scores, values, out=out)  # [..., rows, head_dim]
    out /= total
