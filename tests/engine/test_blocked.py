import numpy as np
import pytest

from gpt_tui.engine import cores
from gpt_tui.engine.blocked import BLOCK, BlockedMatrix, to_blocks


@pytest.mark.parametrize("n_out", [1, BLOCK - 1, BLOCK, 3 * BLOCK + 5])
@pytest.mark.parametrize("n_tok", [1, 2, 4, 37])
def test_product_equals_the_plain_one(n_out: int, n_tok: int) -> None:
    rng = np.random.default_rng(n_out * 100 + n_tok)
    w = rng.standard_normal((48, n_out), dtype=np.float32)
    x = rng.standard_normal((n_tok, 48), dtype=np.float32)
    y = x @ BlockedMatrix.from_matrix(w)
    assert y.shape == (n_tok, n_out) and y.dtype == np.float32
    np.testing.assert_allclose(y, x @ w, rtol=1e-5, atol=1e-5)


def test_layout_round_trip_columns_and_padding() -> None:
    w = np.arange(5 * 70, dtype=np.float32).reshape(5, 70)
    m = BlockedMatrix.from_matrix(w)
    assert m.shape == (5, 70) and m.blocks.shape == (2, 5, BLOCK)
    assert np.all(m.blocks[1, :, 70 - BLOCK :] == 0)  # padding is zeros, never garbage
    np.testing.assert_array_equal(m.to_matrix(), w)
    ids = np.array([0, 63, 64, 69])
    np.testing.assert_array_equal(m.columns(ids), w[:, ids].T)
    np.testing.assert_array_equal(to_blocks(np.asfortranarray(w)), m.blocks)  # any memory order


def test_wrong_blocks_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot hold"):
        BlockedMatrix(np.zeros((2, 5, BLOCK), np.float32), 200)
    with pytest.raises(ValueError, match="mismatch"):
        np.zeros((3, 4), np.float32) @ BlockedMatrix.from_matrix(np.zeros((5, 6), np.float32))


@pytest.mark.parametrize("parts", [2, 3])
@pytest.mark.parametrize("n_tok", [1, 2, 3, 8, 37])
def test_products_shared_between_cores_equal_those_on_one(parts: int, n_tok: int) -> None:
    rng = np.random.default_rng(3)
    w = BlockedMatrix.from_matrix(rng.standard_normal((40, 5 * BLOCK + 3), dtype=np.float32))
    x = rng.standard_normal((n_tok, 40), dtype=np.float32)
    alone = x @ w
    shared = cores.Split(parts=parts)  # from 0 bytes: even this small matrix
    cores.activate(cores.Settings(decode={8: shared}, prefill=shared))
    try:
        np.testing.assert_array_equal(x @ w, alone)
    finally:
        cores.activate(cores.Settings())
