"""Converting OpenAI's TensorFlow checkpoint files, as TensorFlow itself wrote them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from openai_checkpoint import Checkpoint

from gpt_tui.engine.blocked import BlockedMatrix
from gpt_tui.engine.params import flatten_params
from gpt_tui.errors import ModelFileError
from gpt_tui.models.model_dir import read_hparams, read_params
from gpt_tui.models.tf_checkpoint import (
    checkpoint_prefix,
    convert_checkpoint,
    is_checkpoint_dir,
    tf_name,
)


def test_tf_names_are_openais() -> None:
    assert tf_name("wte") == "model/wte"
    assert tf_name("blocks.11.attn.c_attn.w") == "model/h11/attn/c_attn/w"
    assert tf_name("blocks.0.mlp.c_proj.b") == "model/h0/mlp/c_proj/b"
    assert tf_name("ln_f.g") == "model/ln_f/g"


def test_convert_gives_back_the_fabricating_params(gpt2_checkpoint: Checkpoint, tmp_path: Path):
    ticks: list[tuple[int, int]] = []
    target = convert_checkpoint(
        gpt2_checkpoint.directory, tmp_path / "124M", progress=lambda *t: ticks.append(t)
    )
    assert read_hparams(target) == {"architecture": "gpt2", **gpt2_checkpoint.hparams}
    expected = flatten_params(gpt2_checkpoint.params)
    stored = flatten_params(read_params(target))
    # Stored in the engine's layout (matrices in column blocks, the embedding transposed), so
    # loading copies nothing; undone here, it is exactly the checkpoint.
    assert isinstance(stored["wte_t"], BlockedMatrix)
    assert isinstance(stored["blocks.0.mlp.c_fc.w"], BlockedMatrix)
    converted = {n: v.to_matrix() if isinstance(v, BlockedMatrix) else v for n, v in stored.items()}
    converted["wte"] = converted.pop("wte_t").T
    assert converted.keys() == expected.keys()
    for name, array in expected.items():
        assert converted[name].dtype == np.float32
        np.testing.assert_array_equal(converted[name], array, err_msg=name)
    for name in ("encoder.json", "vocab.bpe"):
        assert (target / name).read_bytes() == gpt2_checkpoint.files[name]
    assert ticks[-1] == (len(expected), len(expected))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["124M"]  # no temp dir left


def test_truncated_data_file_is_a_clear_error_and_no_model(checkpoint_copy: Path, tmp_path: Path):
    data = checkpoint_copy / "model.ckpt.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:100_000])
    with pytest.raises(ModelFileError, match="truncated: 100,000 bytes where the index expects"):
        convert_checkpoint(checkpoint_copy, tmp_path / "out" / "124M")
    assert list((tmp_path / "out").glob("*")) == []  # neither the model nor a temp dir


def test_corrupt_data_file_is_caught_by_tensorflows_checksums(
    checkpoint_copy: Path, tmp_path: Path
):
    data = checkpoint_copy / "model.ckpt.data-00000-of-00001"
    damaged = bytearray(data.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    data.write_bytes(bytes(damaged))
    with pytest.raises(ModelFileError, match="is damaged: reading model/.* failed"):
        convert_checkpoint(checkpoint_copy, tmp_path / "out" / "124M")
    assert list((tmp_path / "out").glob("*")) == []  # neither the model nor a temp dir


def test_hparams_of_another_model_are_named(checkpoint_copy: Path, tmp_path: Path):
    hparams = json.loads((checkpoint_copy / "hparams.json").read_text())
    (checkpoint_copy / "hparams.json").write_text(json.dumps({**hparams, "n_embd": 32}))
    with pytest.raises(ModelFileError, match="hparams.json are of different models"):
        convert_checkpoint(checkpoint_copy, tmp_path / "124M")


def test_missing_pieces_are_named(checkpoint_copy: Path, tmp_path: Path):
    (checkpoint_copy / "vocab.bpe").unlink()
    with pytest.raises(ModelFileError, match="has no vocab.bpe"):
        convert_checkpoint(checkpoint_copy, tmp_path / "124M")
    (checkpoint_copy / "hparams.json").write_text('{"n_vocab": 5}')
    with pytest.raises(ModelFileError, match="should hold the integers"):
        convert_checkpoint(checkpoint_copy, tmp_path / "124M")


def test_checkpoint_dir_detection(gpt2_checkpoint: Checkpoint, tmp_path: Path):
    assert is_checkpoint_dir(gpt2_checkpoint.directory)
    assert checkpoint_prefix(gpt2_checkpoint.directory) == gpt2_checkpoint.directory / "model.ckpt"
    assert not is_checkpoint_dir(tmp_path)
    with pytest.raises(ModelFileError, match="no TensorFlow checkpoint"):
        checkpoint_prefix(tmp_path)
