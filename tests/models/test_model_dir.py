"""The converted-model directory: a streamed safetensors file, read back memory-mapped."""

from __future__ import annotations

import stat

import numpy as np
import pytest
from safetensors.numpy import load_file

from gpt_tui.engine.blocked import BlockedMatrix
from gpt_tui.engine.params import flatten_params
from gpt_tui.errors import ModelFileError
from gpt_tui.models.model_dir import (
    WEIGHTS_FILE,
    read_hparams,
    read_params,
    unflatten_params,
    write_model_dir,
)


def test_round_trip_is_exact_and_readable_by_safetensors(tmp_path, tiny_params) -> None:
    target = write_model_dir(
        tmp_path / "m",
        tiny_params,
        {"architecture": "gpt2", "n_ctx": 64},
        extra_files={"note.txt": b"hi"},
    )
    assert read_hparams(target) == {"architecture": "gpt2", "n_ctx": 64}
    assert (target / "note.txt").read_bytes() == b"hi"
    expected = flatten_params(tiny_params)
    by_package = load_file(str(target / WEIGHTS_FILE))  # the reference reader agrees
    assert set(by_package) == set(expected)
    for name, array in expected.items():
        np.testing.assert_array_equal(by_package[name], array)
    mapped = flatten_params(read_params(target))
    for name, array in expected.items():
        np.testing.assert_array_equal(mapped[name], array)
        assert mapped[name].dtype == np.float32 and not mapped[name].flags.writeable
    assert stat.S_IMODE(target.stat().st_mode) == 0o755


def test_unflatten_rebuilds_lists_of_blocks() -> None:
    flat = {"blocks.1.w": np.zeros(1), "blocks.0.w": np.ones(1), "ln_f.g": np.ones(2)}
    nested = unflatten_params(flat)
    assert isinstance(nested["blocks"], list) and nested["blocks"][0]["w"][0] == 1


def test_truncated_weights_are_reported(tmp_path, tiny_params) -> None:
    target = write_model_dir(tmp_path / "m", tiny_params, {"architecture": "gpt2"})
    weights = target / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-1000])
    with pytest.raises(ModelFileError, match="is damaged"):
        read_params(target)
    weights.write_bytes(b"\x00" * 5)
    with pytest.raises(ModelFileError, match="is damaged"):
        read_params(target)


def test_an_interrupted_write_leaves_nothing(tmp_path) -> None:
    bad = {"w": object()}  # not an array: fails midway through writing
    with pytest.raises((TypeError, ValueError)):
        write_model_dir(tmp_path / "m", bad, {})
    assert list(tmp_path.iterdir()) == []


def test_missing_pieces(tmp_path) -> None:
    with pytest.raises(ModelFileError, match="not a model directory"):
        read_hparams(tmp_path)
    with pytest.raises(ModelFileError, match=f"has no {WEIGHTS_FILE}"):
        read_params(tmp_path)


def test_blocked_matrices_are_stored_as_blocks_and_mapped_back(tmp_path) -> None:
    w = np.random.default_rng(0).standard_normal((6, 70), dtype=np.float32)
    params = {"m": BlockedMatrix.from_matrix(w), "v": np.ones(3, np.float32)}
    target = write_model_dir(tmp_path / "m", params, {"architecture": "gpt2"})
    assert load_file(str(target / WEIGHTS_FILE))["m"].shape == (2, 6, 64)  # plain safetensors
    read = read_params(target)
    assert isinstance(read["m"], BlockedMatrix) and read["m"].shape == (6, 70)
    assert not read["m"].blocks.flags.writeable
    np.testing.assert_array_equal(read["m"].to_matrix(), w)
