"""OpenAI's TensorFlow GPT-2 checkpoint -> the converted-model directory (see `model_dir`).

OpenAI publishes each size as a TF1 checkpoint (`model.ckpt.index`, `.data-00000-of-00001`,
`.meta`, `checkpoint`) beside `hparams.json`, `encoder.json` and `vocab.bpe`. Its variables are
named `model/wte`, `model/h3/attn/c_attn/w`, ...; the converted params keep those names in the
nested layout (`blocks[3]["attn"]["c_attn"]["w"]`).

The one subtlety: OpenAI trained with 1x1 convolutions ("Conv1D"), so every matrix is stored as
[1, n_in, n_out]. Dropping the leading 1 gives the [n_in, n_out] matrix the forward pass
multiplies by (`x @ w`), no transpose needed.

TensorFlow is imported inside `read_checkpoint` only: it takes seconds to import, and nothing on
the way to the app or to generation may pay that.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gpt_tui.engine.gpt2 import expected_shapes, streaming_params
from gpt_tui.engine.params import Params, unflatten_params
from gpt_tui.errors import ModelFileError
from gpt_tui.models.model_dir import write_model_dir

HPARAMS_KEYS = ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer")
TOKENIZER_FILES = ("encoder.json", "vocab.bpe")

ConvertProgress = Callable[[int, int], None]  # (tensors done, tensors in all)


def is_checkpoint_dir(path: Path) -> bool:
    """Does `path` hold OpenAI's checkpoint files (rather than a converted model)?"""
    path = Path(path)
    return (path / "hparams.json").is_file() and any(path.glob("*.index"))


def read_checkpoint_hparams(checkpoint_dir: Path) -> dict[str, int]:
    path = Path(checkpoint_dir) / "hparams.json"
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"cannot read {path}: {exc}") from exc
    if not isinstance(raw, dict) or not all(isinstance(raw.get(k), int) for k in HPARAMS_KEYS):
        raise ModelFileError(f"{path} should hold the integers {', '.join(HPARAMS_KEYS)}")
    if raw["n_embd"] % raw["n_head"]:
        raise ModelFileError(f"{path}: n_embd {raw['n_embd']} is not a multiple of n_head")
    return {key: raw[key] for key in HPARAMS_KEYS}


def checkpoint_prefix(checkpoint_dir: Path) -> Path:
    """`dir/model.ckpt`: the name the checkpoint's files share (`.index`, `.data-*`)."""
    checkpoint_dir = Path(checkpoint_dir)
    indexes = sorted(checkpoint_dir.glob("*.index"))
    if not indexes:
        raise ModelFileError(f"{checkpoint_dir} holds no TensorFlow checkpoint (no *.index file)")
    preferred = checkpoint_dir / "model.ckpt.index"
    index = preferred if preferred in indexes else indexes[0]
    return index.with_suffix("")


def tf_name(flat_name: str) -> str:
    """Converted name -> checkpoint name: "blocks.3.attn.c_attn.w" -> "model/h3/attn/c_attn/w"."""
    parts = flat_name.split(".")
    if parts[0] == "blocks":
        parts = [f"h{parts[1]}", *parts[2:]]
    return "model/" + "/".join(parts)


def read_checkpoint(
    prefix: Path, hparams: dict[str, int], progress: ConvertProgress | None = None
) -> Params:
    """Every GPT-2 weight of the checkpoint at `prefix`, checked against `hparams`, as float32
    params in the nested layout the engine takes."""
    _check_data_files(prefix)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's C++ start-up chatter
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # ... and its oneDNN notice
    import tensorflow as tf  # here only: seconds to import, and only conversion needs it

    shapes = expected_shapes(hparams)
    # A damaged checkpoint surfaces as any of these, from deep inside TensorFlow.
    tf_failures = (tf.errors.OpError, IndexError, ValueError, RuntimeError)
    try:
        reader = tf.train.load_checkpoint(str(prefix))
        stored = reader.get_variable_to_shape_map()
    except tf_failures as exc:
        raise ModelFileError(f"cannot read the checkpoint {prefix}: {_first_line(exc)}") from exc
    _check_data_size(prefix, stored, reader.get_variable_to_dtype_map())

    flat: dict[str, np.ndarray] = {}
    for done, (name, shape) in enumerate(shapes.items(), start=1):
        source = tf_name(name)
        if source not in stored:
            raise ModelFileError(f"the checkpoint {prefix} has no variable {source}")
        try:
            array = reader.get_tensor(source)
        except tf_failures as exc:
            raise ModelFileError(
                f"the checkpoint {prefix} is damaged: reading {source} failed: {_first_line(exc)}"
            ) from exc
        if array.ndim == len(shape) + 1 and array.shape[0] == 1:
            array = array[0]  # Conv1D's [1, n_in, n_out] -> [n_in, n_out]
        if array.shape != shape:
            raise ModelFileError(
                f"{source} in {prefix} has shape {list(array.shape)}, but hparams.json implies "
                f"{list(shape)}: the checkpoint and hparams.json are of different models"
            )
        flat[name] = np.ascontiguousarray(array, dtype=np.float32)
        if progress is not None:
            progress(done, len(shapes))
    return unflatten_params(flat)


def convert_checkpoint(
    checkpoint_dir: Path,
    target: Path,
    *,
    progress: ConvertProgress | None = None,
    extra_files: dict[str, Path | bytes] | None = None,
) -> Path:
    """Convert OpenAI's checkpoint files in `checkpoint_dir` into a model directory at `target`,
    atomically (a damaged checkpoint or an interruption leaves no `target`)."""
    checkpoint_dir = Path(checkpoint_dir)
    hparams = read_checkpoint_hparams(checkpoint_dir)
    files: dict[str, Path | bytes] = {}
    for name in TOKENIZER_FILES:
        if not (checkpoint_dir / name).is_file():
            raise ModelFileError(f"{checkpoint_dir} has no {name}")
        files[name] = checkpoint_dir / name
    files.update(extra_files or {})
    # Stored in the layout the engine reads, so that loading maps the file and copies nothing.
    params = streaming_params(read_checkpoint(checkpoint_prefix(checkpoint_dir), hparams, progress))
    return write_model_dir(target, params, {"architecture": "gpt2", **hparams}, files)


def _check_data_files(prefix: Path) -> None:
    if not prefix.with_name(prefix.name + ".index").is_file():
        raise ModelFileError(f"the checkpoint {prefix} has no .index file")
    if not list(prefix.parent.glob(prefix.name + ".data-*")):
        raise ModelFileError(f"the checkpoint {prefix} has no .data-* file")


def _check_data_size(prefix: Path, shapes: dict[str, Any], dtypes: dict[str, Any]) -> None:
    """A truncated .data file, found before TensorFlow fails on it with "Read less bytes"."""
    data_files = sorted(prefix.parent.glob(prefix.name + ".data-*"))
    if len(data_files) != 1:
        return  # sharded checkpoints (not OpenAI's) split the bytes in ways we do not model
    expected = sum(
        int(np.prod(shape, dtype=np.int64)) * dtypes[name].size for name, shape in shapes.items()
    )
    actual = data_files[0].stat().st_size
    if actual < expected:
        raise ModelFileError(
            f"{data_files[0]} is truncated: {actual:,} bytes where the index expects {expected:,}"
        )


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
