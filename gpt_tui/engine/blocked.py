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
reads the same whichever layout its weights have. How many cores compute a product, and from
which matrix size on, is the kernel plan's choice for that row count (engine/plan/, carried
out by engine/cores.py): the blocks are cut into contiguous ranges, one per core.

The other layout a plan may choose is the transpose's rows (engine/rows.py), the same bytes
rearranged: on the Intel Xeon host one row streams faster there on OpenBLAS's own threads
(GPT-2 124M's 49 matrices: 19.4-25.5 ms against 22.8-29.3 ms for these blocks shared between
the cores by our helpers), while 2 to 8 rows go by blocks in both, in about the same time. Which
one a model uses is measured on the machine (engine/plan/); these blocks are the layout kept on
disk.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from gpt_tui.engine import cores

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
        self._blocks: np.ndarray | None = blocks  # [n_blocks, n_in, BLOCK]
        self.shape = (blocks.shape[1], n_out)
        self.dtype = blocks.dtype

    @property
    def blocks(self) -> np.ndarray:
        """[n_blocks, n_in, BLOCK]."""
        if self._blocks is None:
            raise given_up("BlockedMatrix", "rows")
        return self._blocks

    def give_up_blocks(self) -> np.ndarray:
        """The blocks, which this matrix no longer holds (a `RowMatrix` rearranges them in
        place): using it afterwards raises instead of computing with rearranged memory."""
        blocks, self._blocks = self.blocks, None
        return blocks

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
        return by_blocks(x, self.blocks, self.shape[1])

    def columns(self, ids: np.ndarray) -> np.ndarray:
        """Columns `ids` of the matrix, as rows [n_ids, n_in] (a tied embedding's lookup)."""
        ids = np.asarray(ids)
        return self.blocks[ids // BLOCK, :, ids % BLOCK]  # [n_ids, n_in]

    def to_matrix(self) -> np.ndarray:
        """The plain [n_in, n_out] array (a copy)."""
        n_in, n_out = self.shape
        return self.blocks.transpose(1, 0, 2).reshape(n_in, -1)[:, :n_out].copy()


def given_up(held: str, into: str) -> ValueError:
    """The error of a matrix whose memory was rearranged into another layout (engine/layout.py)."""
    return ValueError(
        f"this {held} was rearranged into {into}, in place, by a model built from it "
        "(engine/layout.py); build each model from weights of its own"
    )


def by_blocks(x: np.ndarray, blocks: np.ndarray, n_out: int) -> np.ndarray:
    """x [n_tok, n_in] @ the matrix whose column blocks are `blocks` [n_blocks, n_in, BLOCK]
    (any strides BLAS takes: engine/rows.py passes a transposed view) -> [n_tok, n_out], one
    small product per block, split between the cores as the active plan says for n_tok rows."""
    n_tok = x.shape[0]
    if n_tok < 8 and n_tok % 2:  # an odd count of rows is computed as one more (see above)
        x = np.concatenate([x, x[-1:]])  # [n_tok + 1, n_in]
    n_rows = x.shape[0]
    out = np.empty((n_rows, blocks.shape[0], BLOCK), dtype=np.float32)  # [n, n_b, B]
    # Each block's product lands in its columns of `out` directly: BLAS writes the strided
    # rows itself (measured: a transposing copy afterwards cost 10% of a 512-token prefill).
    by_block = out.transpose(1, 0, 2)  # [n_blocks, n_rows, BLOCK]

    def product(a: int, b: int) -> None:
        np.matmul(x, blocks[a:b], out=by_block[a:b])  # [b-a, n_rows, BLOCK]

    over_blocks(product, blocks.shape[0], n_tok, blocks.nbytes)
    out = out.reshape(n_rows, -1)  # [n_rows, n_blocks*BLOCK]
    return out[:n_tok, :n_out]  # [n_tok, n_out]


def over_blocks(
    product: Callable[[int, int], None], n_blocks: int, n_rows: int, nbytes: int
) -> None:
    """`product(a, b)` over ranges of blocks covering [0, n_blocks), shared between the cores
    as the active plan says for n_rows rows of a matrix of `nbytes`."""
    split = cores.active().for_rows(n_rows)  # the plan for the rows asked for
    cores.set_blas_threads(split.blas_threads)
    parts = split.parts_for(nbytes)
    if parts == 1:
        product(0, n_blocks)
    else:
        cores.run_parts([lambda a=a, b=b: product(a, b) for a, b in cores.ranges(n_blocks, parts)])


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
