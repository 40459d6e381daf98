"""Weight matrices kept as the rows of their transpose: the layout one row streams fastest where
OpenBLAS's threaded matrix-vector product draws more bandwidth than our helpers do.

A matrix W [n_in, n_out] is held as W^T [n_out, n_in], C-contiguous, so one decode row is
`W^T @ x`, BLAS's matrix-vector product, which OpenBLAS threads itself. Measured on the 2-core
Intel Xeon host (AVX-512, KVM, OpenBLAS 0.3.31 SkylakeX; other work on the machine, 40
interleaved rounds, best/median): GPT-2 124M's 49 matrices, one row, 19.4/25.5 ms on OpenBLAS's
two threads against 22.8/29.3 ms for the column blocks of engine/blocked.py shared between the
cores by our helpers (computed as two rows); SmolLM2's 121, 23.5 against 29.1 ms (best).

2 to 8 rows go by blocks of BLOCK rows, one small product each (`x @ block^T` or `block @ x^T`,
as the plan chooses: see `by_row_blocks`; OpenBLAS computes either without packing, like a
column block's), in one NumPy call per matrix or per core: the same work as blocks, and about
the same time (124M: 2 rows 20.6 against 20.8 ms, 4 rows 27.2 against 28.0, 8 rows 38.9 against
34.9, shared between the cores). A whole-matrix `x @ W^T` packs W first (2 rows: 320-480 ms).
A prefill chunk is one `x @ W^T` (256 rows by 124M's 49 matrices: 275 against 333 ms for
blocks, best of 40).

The rows are padded with zeros to whole blocks of BLOCK, so that a `RowMatrix` holds exactly
the bytes a `BlockedMatrix` of the same matrix does: column block b, [n_in, BLOCK], becomes rows
b*BLOCK .. (b+1)*BLOCK of the same memory, transposed. That is how a model is rearranged at load
(engine/layout.py): in place, a few blocks at a time, without a second copy of any matrix; the
converted format on disk stays blocked (models/model_dir.py), whichever layout the plan
chooses, so one file serves every machine's plan.
"""

from __future__ import annotations

import numpy as np

from gpt_tui.engine import cores
from gpt_tui.engine.blocked import (
    BLOCK,
    BlockedMatrix,
    by_blocks,
    given_up,
    n_blocks,
    over_blocks,
)

MAX_BLOCKWISE_ROWS = 8
"""Up to this many rows (a decode step's: batched streams, speculative verification) a product
goes by blocks of rows; more rows (a prefill chunk) are one product."""


class RowMatrix:
    """A float32 matrix [n_in, n_out] held as its transpose's rows [n_blocks*BLOCK, n_in] (rows
    past n_out zero)."""

    # Makes NumPy leave `x @ w` to `__rmatmul__` instead of converting w to an array.
    __array_ufunc__ = None

    def __init__(self, rows: np.ndarray, n_out: int) -> None:
        if rows.ndim != 2 or rows.shape[0] != n_blocks(n_out) * BLOCK:
            raise ValueError(
                f"rows of shape {rows.shape} cannot hold {n_out} columns padded to blocks of "
                f"{BLOCK}"
            )
        if not rows.flags.c_contiguous or rows.dtype != np.float32:
            raise ValueError("a RowMatrix needs C-contiguous float32 rows")
        self._rows: np.ndarray | None = rows  # [n_blocks*BLOCK, n_in]
        self.shape = (rows.shape[1], n_out)
        self.dtype = rows.dtype

    @classmethod
    def from_matrix(cls, w: np.ndarray) -> RowMatrix:
        """w [n_in, n_out] as rows (a copy)."""
        n_in, n_out = w.shape
        rows = np.empty((n_blocks(n_out) * BLOCK, n_in), dtype=np.float32)  # [n_pad, n_in]
        rows[:n_out] = w.T
        rows[n_out:] = 0.0
        return cls(rows, n_out)

    @property
    def rows(self) -> np.ndarray:
        """[n_blocks*BLOCK, n_in]."""
        if self._rows is None:
            raise given_up("RowMatrix", "blocks")
        return self._rows

    @property
    def t(self) -> np.ndarray:
        """W^T [n_out, n_in]."""
        return self.rows[: self.shape[1]]

    @property
    def stacked(self) -> np.ndarray:
        """The rows as column blocks of W: block b is rows b*BLOCK.. of W^T, read transposed
        (strides BLAS takes as they are) [n_blocks, n_in, BLOCK]."""
        return self.rows.reshape(-1, BLOCK, self.shape[0]).transpose(0, 2, 1)

    def give_up_rows(self) -> np.ndarray:
        """The rows, which this matrix no longer holds (engine/layout.py rearranges them in
        place): using it afterwards raises instead of computing with rearranged memory."""
        rows, self._rows = self.rows, None
        return rows

    @property
    def nbytes(self) -> int:
        return self.rows.nbytes

    def __rmatmul__(self, x: np.ndarray) -> np.ndarray:
        """x [n_tok, n_in] @ self -> [n_tok, n_out]."""
        if not isinstance(x, np.ndarray) or x.ndim != 2:
            return NotImplemented
        n_tok = x.shape[0]
        if x.shape[1] != self.shape[0]:
            raise ValueError(f"shapes mismatch: x {x.shape} @ a matrix of {self.shape}")
        split = cores.active().for_rows(n_tok)  # the plan for the rows asked for
        if 1 < n_tok <= MAX_BLOCKWISE_ROWS:
            if split.block_first:
                return by_row_blocks(x, self.rows, self.shape[1])  # [n_tok, n_out]
            return by_blocks(x, self.stacked, self.shape[1])  # [n_tok, n_out]
        cores.set_blas_threads(split.blas_threads)
        parts = split.parts_for(self.nbytes)
        t, n_out = self.t, self.shape[1]  # [n_out, n_in]
        out = np.empty((n_tok, n_out), dtype=np.float32)  # [n_tok, n_out]
        if n_tok == 1:  # BLAS's matrix-vector product: W^T [b-a, n_in] @ x [n_in]

            def product(a: int, b: int) -> None:
                np.matmul(t[a:b], x[0], out=out[0, a:b])  # [b-a]

        else:  # a prefill chunk: x [n_tok, n_in] @ W^T[a:b].T (gemm, W^T read transposed)

            def product(a: int, b: int) -> None:
                np.matmul(x, t[a:b].T, out=out[:, a:b])  # [n_tok, b-a]

        if parts == 1:
            product(0, n_out)
        else:
            cores.run_parts([lambda a=a, b=b: product(a, b) for a, b in row_ranges(n_out, parts)])
        return out

    def columns(self, ids: np.ndarray) -> np.ndarray:
        """Columns `ids` of the matrix, as rows [n_ids, n_in] (a tied embedding's lookup)."""
        return self.t[np.asarray(ids)]  # [n_ids, n_in]

    def to_matrix(self) -> np.ndarray:
        """The plain [n_in, n_out] array (a copy)."""
        return self.t.T.copy()  # [n_in, n_out]

    def to_blocked(self) -> BlockedMatrix:
        """The same matrix in column blocks (a copy): the layout kept on disk."""
        blocks = np.ascontiguousarray(self.stacked)  # [n_blocks, n_in, BLOCK]
        return BlockedMatrix(blocks, self.shape[1])


def by_row_blocks(x: np.ndarray, rows: np.ndarray, n_out: int) -> np.ndarray:
    """x [n_tok, n_in] @ the matrix whose transpose's rows are `rows` [n_blocks*BLOCK, n_in]
    -> [n_tok, n_out]: one small product per block of rows, `block @ x^T`, split between the
    cores as the active plan says for n_tok rows.

    Both operands as they lie in memory (x^T made contiguous: n_tok*n_in floats), where the
    other form, `x @ block^T` (`by_blocks` on the transposed view), has OpenBLAS read the
    block transposed. Which is faster depends on the shapes, so the plan chooses by row count
    (`Split.block_first`). On the Intel host, blocks shared between 2 cores: 4 rows of GPT-2
    1558M's first 4 layers' matrices (492 MB) took 32-35 ms this way against 39-41 (5 rows
    38-41 against 42-47), while 8 rows of SmolLM2's took 67 against 53.
    """
    n_tok, n_in = x.shape
    xt = np.ascontiguousarray(x.T)  # [n_in, n_tok]
    blocks = rows.reshape(-1, BLOCK, n_in)  # [n_blocks, BLOCK, n_in]
    out = np.empty((blocks.shape[0], BLOCK, n_tok), dtype=np.float32)  # [n_b, BLOCK, n_tok]

    def product(a: int, b: int) -> None:
        np.matmul(blocks[a:b], xt, out=out[a:b])  # [b-a, BLOCK, n_tok]

    over_blocks(product, blocks.shape[0], n_tok, rows.nbytes)
    return np.ascontiguousarray(out.reshape(-1, n_tok)[:n_out].T)  # [n_tok, n_out]


def row_ranges(n_out: int, parts: int) -> list[tuple[int, int]]:
    """[0, n_out) cut into `parts` ranges of whole blocks of rows (the last one shorter), so
    that each part starts on a 64-byte boundary of the weights and of the output."""
    return [(a * BLOCK, min(b * BLOCK, n_out)) for a, b in cores.ranges(n_blocks(n_out), parts)]
