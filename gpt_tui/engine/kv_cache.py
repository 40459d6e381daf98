"""The key/value cache: the engine's only state.

Keys and values for every layer live in two arrays, [n_layer, n_batch, n_kv_head, capacity,
head_dim], grown by doubling as the context fills (never per step); a forward pass writes its new
positions in place and reads the filled prefix.
The cache also remembers which token ids it holds, so a caller can reuse the longest common prefix
of a new context (continue, regenerate, branch) and `truncate` to any earlier point for free.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from gpt_tui.engine import cores

INITIAL_POSITIONS = 256


class KVCache:
    def __init__(
        self, n_layer: int, n_kv_head: int, head_dim: int, n_ctx: int, n_batch: int = 1
    ) -> None:
        # Room for INITIAL_POSITIONS at first, doubled as the context grows (see `reserve`).
        shape = (n_layer, n_batch, n_kv_head, min(n_ctx, INITIAL_POSITIONS), head_dim)
        self.k = np.zeros(shape, dtype=np.float32)
        self.v = np.zeros(shape, dtype=np.float32)
        self.ids = np.zeros((n_batch, n_ctx), dtype=np.int64)
        self.n_ctx = n_ctx
        self.n_batch = n_batch
        self.length = 0

    def __len__(self) -> int:
        return self.length

    @property
    def free(self) -> int:
        return self.n_ctx - self.length

    def tokens(self, row: int = 0) -> list[int]:
        """The token ids whose keys and values the cache holds, for one batch row."""
        return self.ids[row, : self.length].tolist()

    @property
    def capacity(self) -> int:
        """Positions the arrays have room for now (at most n_ctx)."""
        return self.k.shape[3]

    def reserve(self, n: int) -> None:
        """Make room for n positions: the arrays are reallocated at twice the size (or n), the
        filled prefix copied.

        Allocating all n_ctx positions up front costs their memory at once: NumPy asks for huge
        pages, so the first key written to a head's row takes the whole 2 MiB page around it
        (a SmolLM2 cache held 377 MB from its first token, four streams 1.5 GB). Small pages
        instead made attention over 900 positions 18% slower. Doubling keeps both: memory in
        proportion to the context used, and huge pages.
        """
        if n <= self.capacity:
            return
        if n > self.n_ctx:
            raise ValueError(f"{n} positions exceed the cache's context of {self.n_ctx}")
        grown = min(self.n_ctx, max(n, 2 * self.capacity))
        for name in ("k", "v"):
            old = getattr(self, name)
            new = np.zeros((*old.shape[:3], grown, old.shape[4]), dtype=np.float32)
            new[:, :, :, : self.length] = old[:, :, :, : self.length]
            setattr(self, name, new)

    def store(self, layer: int, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Write new keys/values [n_batch, n_kv_head, n_new, head_dim] after the filled prefix.

        Returns views of all keys and values so far, [n_batch, n_kv_head, length + n_new, head_dim].
        `length` moves only in `commit`, once every layer has stored its part.
        """
        end = self.length + k.shape[2]
        self.reserve(end)
        self.k[layer, :, :, self.length : end] = k
        self.v[layer, :, :, self.length : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def commit(self, ids: np.ndarray) -> None:
        """Record the token ids [n_batch, n_new] just stored and advance the length."""
        end = self.length + ids.shape[1]
        self.ids[:, self.length : end] = ids
        self.length = end

    def truncate(self, n: int) -> None:
        """Roll back to the first n tokens; later positions are simply overwritten next time."""
        if not 0 <= n <= self.length:
            raise ValueError(f"cannot truncate a cache of {self.length} tokens to {n}")
        self.length = n

    def repeat(self, n_batch: int) -> KVCache:
        """A cache of n_batch streams, each starting with this (one-stream) cache's content."""
        if self.n_batch != 1:
            raise ValueError("only a single-stream cache can be repeated")
        n_layer, _, n_kv_head, _, head_dim = self.k.shape
        out = KVCache(n_layer, n_kv_head, head_dim, self.n_ctx, n_batch)
        n = self.length
        out.reserve(n)
        out.k[:, :, :, :n] = self.k[:, :, :, :n]
        out.v[:, :, :, :n] = self.v[:, :, :, :n]
        out.ids[:, :n] = self.ids[:, :n]
        out.length = n
        return out

    def common_prefix(self, ids: list[int], row: int = 0) -> int:
        """How many leading tokens of `ids` the cache already holds."""
        n = min(len(ids), self.length)
        if n == 0:
            return 0
        held = self.ids[row, :n]
        mismatch = np.flatnonzero(held != np.asarray(ids[:n], dtype=np.int64))
        return int(mismatch[0]) if mismatch.size else n


class _Model(Protocol):
    n_vocab: int
    n_ctx: int

    def new_cache(self, n_batch: int = 1, n_ctx: int | None = None) -> KVCache: ...


def checked_input(
    model: _Model, ids: Any, cache: KVCache | None
) -> tuple[np.ndarray, bool, KVCache]:
    """What every forward pass does first: ids as [n_batch, n_seq], checked against the
    vocabulary, the context left in the cache and the cache's streams; a cache to write to.

    Returns (ids [n_batch, n_seq], whether the ids came batched, the cache). Without a cache,
    a throwaway one just large enough: a full, independent forward pass.
    """
    ids = np.asarray(ids, dtype=np.int64)
    batched = ids.ndim == 2
    ids = ids if batched else ids[None, :]  # [n_batch, n_seq]
    n_batch, n_seq = ids.shape
    start = cache.length if cache is not None else 0
    if n_seq == 0:
        raise ValueError("forward needs at least one token")
    if start + n_seq > model.n_ctx:
        raise ValueError(
            f"{start} cached + {n_seq} new positions exceed the context of {model.n_ctx}"
        )
    if ids.min() < 0 or ids.max() >= model.n_vocab:
        raise ValueError(f"token ids must lie in [0, {model.n_vocab})")
    if cache is None:
        cache = model.new_cache(n_batch, n_ctx=n_seq)
    elif cache.n_batch != n_batch:
        raise ValueError(f"cache holds {cache.n_batch} streams, ids {n_batch}")
    return ids, batched, cache


def checked_resume(
    model: Any, layer: int, resid: Any, cache: KVCache | None
) -> tuple[np.ndarray, KVCache]:
    """What a pass resumed at block `layer` (a model's `resume`) does first: the residual
    [n_batch, n_seq, n_embd] checked, as a float32 copy [n_tok, n_embd], and the cache it
    continues (a throwaway one without)."""
    resid = np.asarray(resid)
    if not 0 <= layer < model.n_layer:
        raise ValueError(f"no block {layer}; the blocks are 0-{model.n_layer - 1}")
    if resid.ndim != 3 or resid.shape[2] != model.n_embd or resid.shape[1] == 0:
        raise ValueError(f"a residual is [n_batch, n_seq, {model.n_embd}], not {resid.shape}")
    n_batch, n_seq, n_embd = resid.shape
    start = cache.length if cache is not None else 0
    if start + n_seq > model.n_ctx:
        raise ValueError(f"{start} cached + {n_seq} new positions exceed the context of "
                         f"{model.n_ctx}")  # fmt: skip
    if cache is None:
        cache = model.new_cache(n_batch, n_ctx=n_seq)
    elif cache.n_batch != n_batch:
        raise ValueError(f"cache holds {cache.n_batch} streams, the residual {n_batch}")
    cache.reserve(start + n_seq)
    return np.array(resid.reshape(n_batch * n_seq, n_embd), dtype=np.float32), cache


def hidden_in_chunks(
    hidden: Callable[[np.ndarray, KVCache], np.ndarray],
    ids: np.ndarray,
    cache: KVCache,
    last_only: bool,
    whole: bool = False,
) -> np.ndarray:
    """A model's final hidden states [n_batch, n_seq, n_embd] for ids [n_batch, n_seq] (only
    the last position's, [n_batch, 1, n_embd], when `last_only`), from `hidden(chunk, cache)`
    run on the plan's `prefill_chunk` positions at a time, as llama.cpp's batches do.

    Attention tiles its scores whatever the chunk (engine/attention.py), so the chunk trades
    the projections' efficiency (larger products run faster: on the Intel host SmolLM2's, on 2
    BLAS threads, 173 GFLOP/s in chunks of 256, 194 of 512, 203 of 1024) against the
    activations' memory; the plan measures it. The cache is grown once for the whole prompt,
    not by doubling at every chunk (a 6,000-token SmolLM2 prompt copied 0.5 s of it).
    `whole` computes every position in one chunk (a hooked pass: its hooks see them all).
    """
    chunk = ids.shape[1] if whole else cores.active().prefill_chunk
    cache.reserve(cache.length + ids.shape[1])
    chunks = [hidden(ids[:, i : i + chunk], cache)  # [n_batch, chunk, n_embd]
              for i in range(0, ids.shape[1], chunk)]  # fmt: skip
    return chunks[-1][:, -1:] if last_only else np.concatenate(chunks, axis=1)


class CacheReader:
    """The first `length` positions of one stream of a cache, for a pass over positions the
    cache already holds that must leave it as it is (look inside, engine/trace.py): `store`
    writes nothing and answers with the cache's own keys and values up to the pass's last
    position, which were computed from the same tokens over the same prefix (the pass's own
    are not used: nothing is copied, whatever the context); `commit` records nothing."""

    n_batch = 1

    def __init__(self, cache: KVCache, length: int, row: int = 0) -> None:
        if not 0 <= length <= cache.length:
            raise ValueError(f"the cache holds {cache.length} positions, not {length}")
        self._cache, self._row = cache, row
        self.length, self.n_ctx = length, cache.n_ctx

    def reserve(self, n: int) -> None:
        if n > self._cache.length:
            raise ValueError(f"the cache holds {self._cache.length} positions, not {n}")

    def store(self, layer: int, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The cache's keys and values of positions 0..length + n_new - 1 for k, v [1,
        n_kv_head, n_new, head_dim]: [1, n_kv_head, length + n_new, head_dim] each (views)."""
        end, rows = self.length + k.shape[2], slice(self._row, self._row + 1)
        return self._cache.k[layer, rows, :, :end], self._cache.v[layer, rows, :, :end]

    def commit(self, ids: np.ndarray) -> None:
        pass
