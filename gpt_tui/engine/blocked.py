"""Weight matrices stored as column blocks: the layout a decode step streams fastest.

A decode step multiplies a few rows (one per stream) by every weight matrix, so it is bound by
reading the weights. Stored plainly, [n_in, n_out], OpenBLAS handles one row with its
matrix-vector kernel, but 2 to 8 rows with its general kernel, which first copies ("packs") the
whole matrix: 4 streams then cost 2.5x one stream per step (GPT-2 124M, measured here). Cut into
contiguous blocks of `BLOCK` columns, [n_blocks, n_in, BLOCK], each block is a small product
that OpenBLAS computes without packing, reading each weight once for all the rows. Measured on
the 48 block matrices plus the output projection of GPT-2 124M, one BLAS thread: 2 rows 16.3 ms,
4 rows 17.0 ms, against 17.0 ms for one row on the plain layout with two threads (22.3 ms with
one). One row alone on blocks is slower (21.2 ms): it takes OpenBLAS's vector path again, so a
single row is computed as two. Odd counts are slow as well (SmolLM2, 3 rows: 29-32 ms, against
18-22 for 4), so 3, 5 and 7 rows are computed as 4, 6 and 8.

`BlockedMatrix` keeps the logical shape [n_in, n_out] and works with `x @ w`, so a forward pass
reads the same whichever layout its weights have.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import numpy as np

BLOCK = 64
"""Columns per block. 32 and 128 measured slower for 2-4 rows on GPT-2 and SmolLM2 shapes."""


def n_blocks(n_out: int) -> int:
    return -(-n_out // BLOCK)


class BlockedMatrix:
    """A float32 matrix [n_in, n_out] held as blocks [n_blocks, n_in, BLOCK] (the last one
    zero-padded when n_out is not a multiple of BLOCK)."""

    # Makes NumPy leave `x @ w` to `__rmatmul__` instead of converting w to an array.
    __array_ufunc__ = None

    def __init__(self, blocks: np.ndarray, n_out: int) -> None:
        if blocks.ndim != 3 or blocks.shape[2] != BLOCK or blocks.shape[0] != n_blocks(n_out):
            raise ValueError(
                f"blocks of shape {blocks.shape} cannot hold {n_out} columns in blocks of {BLOCK}"
            )
        self.blocks = blocks  # [n_blocks, n_in, BLOCK]
        self.shape = (blocks.shape[1], n_out)
        self.dtype = blocks.dtype

    @classmethod
    def from_matrix(cls, w: np.ndarray, out: np.ndarray | None = None) -> BlockedMatrix:
        """w [n_in, n_out] in blocks (written into `out` [n_blocks, n_in, BLOCK] when given)."""
        return cls(to_blocks(w, out), w.shape[1])

    @property
    def nbytes(self) -> int:
        return self.blocks.nbytes

    def __rmatmul__(self, x: np.ndarray) -> np.ndarray:
        """x [n_tok, n_in] @ self -> [n_tok, n_out]."""
        if not isinstance(x, np.ndarray) or x.ndim != 2:
            return NotImplemented
        n_tok = x.shape[0]
        if n_tok < 8 and n_tok % 2:  # an odd count of rows is computed as one more (see above)
            x = np.concatenate([x, x[-1:]])  # [n_tok + 1, n_in]
        n_rows = x.shape[0]
        out = np.empty((n_rows, self.blocks.shape[0], BLOCK), dtype=np.float32)  # [n, n_b, B]
        # Each block's product lands in its columns of `out` directly: BLAS writes the strided
        # rows itself (measured: a transposing copy afterwards cost 10% of a 512-token prefill).
        by_block = out.transpose(1, 0, 2)  # [n_blocks, n_rows, BLOCK]
        if _sharing and n_rows <= 8 and self.blocks.nbytes >= SPLIT_MIN_BYTES:
            half = self.blocks.shape[0] // 2
            _helper.share(  # type: ignore[union-attr]
                lambda: np.matmul(x, self.blocks[:half], out=by_block[:half]),
                lambda: np.matmul(x, self.blocks[half:], out=by_block[half:]),
            )
        else:
            np.matmul(x, self.blocks, out=by_block)
        out = out.reshape(n_rows, -1)  # [n_rows, n_blocks*BLOCK]
        return out[:n_tok, : self.shape[1]]  # [n_tok, n_out]

    def columns(self, ids: np.ndarray) -> np.ndarray:
        """Columns `ids` of the matrix, as rows [n_ids, n_in] (a tied embedding's lookup)."""
        ids = np.asarray(ids)
        return self.blocks[ids // BLOCK, :, ids % BLOCK]  # [n_ids, n_in]

    def to_matrix(self) -> np.ndarray:
        """The plain [n_in, n_out] array (a copy)."""
        n_in, n_out = self.shape
        return self.blocks.transpose(1, 0, 2).reshape(n_in, -1)[:, :n_out].copy()


SPLIT_MIN_BYTES = 32 << 20
"""Products of a matrix this large are shared between two cores when `use_two_cores` is on.
Smaller ones cost more in the hand-over than they gain. Median decode step, shared from
4 MB / from 32 MB / not at all: GPT-2 124M 18.6 / 17.6 / 18.2 ms (only its 154 MB output
projection is 32 MB or more), SmolLM2 23.2 / 22.6 / 22.9 ms, GPT-2 1558M 203 / 206 / 214 ms.
Mostly two cores stream no more than one here (33-35 against 31-33 GB/s). In bursts of a
few seconds they stream 52-61 GB/s, and sharing from 4 MB then gives 124M steps of 13.4-14.5
ms; a tuner that kept trying the 4 MB threshold to catch them was 2% slower over 300-step
runs, since no burst came while decoding."""


class _Helper:
    """A thread that computes half of a product while the calling thread computes the other.

    The small products a decode step is made of run on one core each (OpenBLAS does not
    thread them), and one core may not draw all of the memory bandwidth: on this 2-core machine
    GPT-2 124M's products took 16.3 ms on one core and 11.8 ms shared, at quiet moments (at
    busy ones, no gain: whether to share is measured, see gpt_tui.threads). NumPy releases
    the GIL inside matmul, so the two halves run at once. Hand-over is by two locks, the
    cheapest signal Python has.
    """

    def __init__(self) -> None:
        self._busy = threading.Lock()  # one caller at a time; another computes alone
        self._go = threading.Lock()
        self._done = threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._job: Callable[[], object] | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._serve, name="gpt-tui-matmul", daemon=True).start()

    def _serve(self) -> None:
        while True:
            self._go.acquire()
            try:
                self._job()  # type: ignore[misc]
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller
                self._error = exc
            self._done.release()

    def share(self, mine: Callable[[], object], theirs: Callable[[], object]) -> None:
        """Run `theirs` on the helper and `mine` here; return when both are done."""
        if not self._busy.acquire(blocking=False):
            mine()
            theirs()
            return
        try:
            self._job, self._error = theirs, None
            self._go.release()
            try:
                mine()
            finally:
                self._done.acquire()
            if self._error is not None:
                raise self._error
        finally:
            self._job = None
            self._busy.release()


_helper: _Helper | None = None  # started at the first `use_two_cores(True)`, then kept
_sharing = False


def use_two_cores(on: bool) -> None:
    """Share each large product of a decode step between two cores, or stop (process-wide,
    like BLAS's own thread count)."""
    global _helper, _sharing
    if on and _helper is None:
        _helper = _Helper()
    _sharing = on


def two_cores() -> bool:
    return _sharing


def to_blocks(w: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """w [n_in, n_out] -> [n_blocks, n_in, BLOCK], float32, zero-padded to whole blocks
    (written into `out` when given)."""
    n_in, n_out = w.shape
    blocks = np.empty((n_blocks(n_out), n_in, BLOCK), dtype=np.float32) if out is None else out
    whole = n_out // BLOCK
    if whole:
        blocks[:whole] = w[:, : whole * BLOCK].reshape(n_in, whole, BLOCK).transpose(1, 0, 2)
    if n_out % BLOCK:
        blocks[whole, :, : n_out % BLOCK] = w[:, whole * BLOCK :]
        blocks[whole, :, n_out % BLOCK :] = 0.0
    return blocks


def blocks_shape(n_in: int, n_out: int) -> tuple[int, int, int]:
    return (n_blocks(n_out), n_in, BLOCK)


def float32_arena(shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    """Uninitialised float32 arrays of these shapes, carved from one allocation.

    Weights are streamed 11% faster from huge pages (2 MiB) than from 4 KiB ones (SmolLM2's
    matrix products: 19.5 against 21.8 ms per token), and NumPy asks the kernel for huge pages
    only for arrays of 4 MiB or more, which most weight matrices are not. One allocation
    holding them all is. Each array starts on a 64-byte boundary of it.
    """
    sizes = [-(-math.prod(shape) // 16) * 16 for shape in shapes]  # 16 floats: 64 bytes
    places = np.cumsum([0, *sizes])
    arena = np.empty(int(places[-1]), dtype=np.float32)
    return [
        arena[place : place + math.prod(shape)].reshape(shape)
        for shape, place in zip(shapes, places[:-1], strict=True)
    ]
