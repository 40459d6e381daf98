"""RowMatrix: the rows of W^T, every product kind against a plain `x @ w`."""

from __future__ import annotations

import numpy as np
import pytest

from gpt_tui.engine import cores
from gpt_tui.engine.blocked import BLOCK, BlockedMatrix
from gpt_tui.engine.rows import RowMatrix, row_ranges

SPLITS = {
    "one core": cores.Split(),
    "shared by 2": cores.Split(parts=2),
    "shared by 3": cores.Split(parts=3),
    "BLAS threads": cores.Split(blas_threads=2),
    "one core, block @ x^T": cores.Split(block_first=True),
    "shared by 3, block @ x^T": cores.Split(parts=3, block_first=True),
}


@pytest.fixture(params=list(SPLITS.values()), ids=list(SPLITS))
def split(request: pytest.FixtureRequest):
    """Every row count computed under this split (from 0 bytes: even small matrices)."""
    cores.activate(cores.Settings(decode={8: request.param}, prefill=request.param))
    yield request.param
    cores.activate(cores.Settings())


@pytest.mark.parametrize("n_out", [1, BLOCK - 1, BLOCK, 3 * BLOCK + 5])
@pytest.mark.parametrize("n_tok", [1, 2, 3, 5, 8, 9, 37])
def test_product_equals_the_plain_one(n_out: int, n_tok: int, split) -> None:
    rng = np.random.default_rng(n_out * 100 + n_tok)
    w = rng.standard_normal((48, n_out), dtype=np.float32)
    x = rng.standard_normal((n_tok, 48), dtype=np.float32)
    y = x @ RowMatrix.from_matrix(w)
    assert y.shape == (n_tok, n_out) and y.dtype == np.float32
    np.testing.assert_allclose(y, x @ w, rtol=1e-5, atol=1e-5)


def test_layout_round_trip_columns_and_padding() -> None:
    w = np.arange(5 * 70, dtype=np.float32).reshape(5, 70)
    m = RowMatrix.from_matrix(w)
    assert m.shape == (5, 70) and m.rows.shape == (2 * BLOCK, 5) and m.nbytes == m.rows.nbytes
    assert np.all(m.rows[70:] == 0)  # padding is zeros, never garbage
    np.testing.assert_array_equal(m.t, w.T)
    np.testing.assert_array_equal(m.to_matrix(), w)
    ids = np.array([0, 63, 64, 69])
    np.testing.assert_array_equal(m.columns(ids), w[:, ids].T)
    blocked = m.to_blocked()  # the layout kept on disk: the same bytes as BlockedMatrix's
    assert isinstance(blocked, BlockedMatrix)
    np.testing.assert_array_equal(blocked.blocks, BlockedMatrix.from_matrix(w).blocks)


def test_same_nbytes_as_the_blocks_of_the_same_matrix() -> None:
    w = np.ones((7, 3 * BLOCK + 5), dtype=np.float32)
    assert RowMatrix.from_matrix(w).nbytes == BlockedMatrix.from_matrix(w).nbytes


def test_wrong_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot hold"):
        RowMatrix(np.zeros((BLOCK, 5), np.float32), 200)
    with pytest.raises(ValueError, match="C-contiguous float32"):
        RowMatrix(np.zeros((5, BLOCK), np.float32).T, 3)
    with pytest.raises(ValueError, match="mismatch"):
        np.zeros((1, 4), np.float32) @ RowMatrix.from_matrix(np.zeros((5, 6), np.float32))
    with pytest.raises(ValueError, match="mismatch"):
        np.zeros((3, 4), np.float32) @ RowMatrix.from_matrix(np.zeros((5, 6), np.float32))


@pytest.mark.parametrize("n_out", [1, BLOCK, 5 * BLOCK + 3])
@pytest.mark.parametrize("parts", [1, 2, 3, 8])
def test_row_ranges_cover_the_rows_on_whole_blocks(n_out: int, parts: int) -> None:
    ranges = row_ranges(n_out, parts)
    assert ranges[0][0] == 0 and ranges[-1][1] == n_out
    assert all(b == c for (_, b), (c, _) in zip(ranges, ranges[1:], strict=False))
    assert all(a % BLOCK == 0 and a < b for a, b in ranges)
