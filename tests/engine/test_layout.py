"""Rearranging matrices between the layouts in place, and reading one as the other."""

from __future__ import annotations

import numpy as np
import pytest

from gpt_tui.engine import layout
from gpt_tui.engine.blocked import BLOCK, BlockedMatrix, float32_arena
from gpt_tui.engine.layout import BLOCKS, ROWS, arrange, layout_of, rearranged, same_bytes_as
from gpt_tui.engine.rows import RowMatrix


def _matrix(n_in: int = 9, n_out: int = 3 * BLOCK + 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n_in, n_out), dtype=np.float32)


@pytest.mark.parametrize("n_out", [1, BLOCK, 3 * BLOCK + 5])
def test_blocks_become_rows_in_their_own_memory_and_back(n_out: int) -> None:
    w = _matrix(n_out=n_out)
    blocked = BlockedMatrix.from_matrix(w)
    memory = blocked.blocks
    rows = rearranged(blocked, ROWS)
    assert isinstance(rows, RowMatrix) and np.shares_memory(rows.rows, memory)
    np.testing.assert_array_equal(rows.to_matrix(), w)
    np.testing.assert_array_equal(rows.rows, RowMatrix.from_matrix(w).rows)  # padding too
    back = rearranged(rows, BLOCKS)
    assert isinstance(back, BlockedMatrix) and np.shares_memory(back.blocks, memory)
    np.testing.assert_array_equal(back.blocks, BlockedMatrix.from_matrix(w).blocks)


def test_a_matrix_given_up_refuses_to_compute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layout, "REARRANGE_BYTES", 1)  # a block at a time: several steps
    blocked = BlockedMatrix.from_matrix(_matrix())
    rows = rearranged(blocked, ROWS)
    with pytest.raises(ValueError, match="rearranged into rows"):
        np.ones((1, 9), np.float32) @ blocked
    rearranged(rows, BLOCKS)
    with pytest.raises(ValueError, match="rearranged into blocks"):
        np.ones((1, 9), np.float32) @ rows


def test_read_only_weights_stay_read_only() -> None:
    (place,) = float32_arena([(4, 9, BLOCK)])  # as models/model_dir.py reads them
    blocked = BlockedMatrix.from_matrix(_matrix(), out=place)
    place.flags.writeable = False
    rows = rearranged(blocked, ROWS)
    assert np.shares_memory(rows.rows, place) and not rows.rows.flags.writeable
    np.testing.assert_array_equal(rows.to_matrix(), _matrix())


def test_memory_that_cannot_be_written_is_copied() -> None:
    blocks = BlockedMatrix.from_matrix(_matrix()).blocks
    frozen = np.frombuffer(blocks.tobytes(), dtype=np.float32).reshape(blocks.shape)
    rows = rearranged(BlockedMatrix(frozen, _matrix().shape[1]), ROWS)
    assert not np.shares_memory(rows.rows, frozen)
    np.testing.assert_array_equal(rows.to_matrix(), _matrix())


def test_the_same_bytes_read_as_the_other_layout() -> None:
    blocked = BlockedMatrix.from_matrix(_matrix())
    as_rows = same_bytes_as(blocked, ROWS)
    assert isinstance(as_rows, RowMatrix) and as_rows.shape == blocked.shape
    assert np.shares_memory(as_rows.rows, blocked.blocks)
    assert same_bytes_as(as_rows, BLOCKS).shape == blocked.shape
    assert same_bytes_as(blocked, BLOCKS) is blocked
    np.testing.assert_array_equal(blocked.to_matrix(), _matrix())  # untouched


def test_arrange_rearranges_every_held_matrix_and_nothing_else() -> None:
    bias = np.ones(5, np.float32)
    params = {"blocks": [{"w": BlockedMatrix.from_matrix(_matrix(seed=i)), "b": bias}
                         for i in range(2)], "wpe": np.ones((3, 4), np.float32)}  # fmt: skip
    arranged = arrange(params, ROWS)
    assert [layout_of(b["w"]) for b in arranged["blocks"]] == [ROWS, ROWS]
    assert arranged["blocks"][1]["b"] is bias and layout_of(arranged["wpe"]) is None
    np.testing.assert_array_equal(arranged["blocks"][1]["w"].to_matrix(), _matrix(seed=1))
    with pytest.raises(ValueError, match="no weight layout"):
        arrange(arranged, "diagonal")


def test_matrices_held_as_rows_are_written_to_disk_as_blocks(tmp_path) -> None:
    """The converted format stays blocked whichever layout a model holds (models/model_dir.py)."""
    from safetensors.numpy import load_file

    from gpt_tui.models.model_dir import WEIGHTS_FILE, read_params, write_model_dir

    w = _matrix(n_in=6, n_out=70)
    target = write_model_dir(tmp_path / "m", {"m": RowMatrix.from_matrix(w)}, {})
    on_disk = load_file(str(target / WEIGHTS_FILE))["m"]
    np.testing.assert_array_equal(on_disk, BlockedMatrix.from_matrix(w).blocks)
    read = read_params(target)["m"]
    assert layout_of(read) == BLOCKS
    np.testing.assert_array_equal(read.to_matrix(), w)
