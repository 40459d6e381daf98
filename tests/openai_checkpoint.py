"""OpenAI's GPT-2 checkpoint files as tests write them: the variables by hand, the files with
tensorflow. A module of its own (not the conftest) so that test files import it by a name no
other folder's conftest shares."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# GPT-2's real vocabulary (so the real encoder.json and vocab.bpe fit) in a model of 16 dims.
TINY_HPARAMS = {"n_vocab": 50257, "n_ctx": 64, "n_embd": 16, "n_head": 2, "n_layer": 2}
OPENAI_FILES = (
    "checkpoint",
    "encoder.json",
    "hparams.json",
    "model.ckpt.data-00000-of-00001",
    "model.ckpt.index",
    "model.ckpt.meta",
    "vocab.bpe",
)


@dataclass(frozen=True)
class Checkpoint:
    directory: Path  # OpenAI's seven files; tests copy it before changing anything
    params: dict  # the weights it holds, in the engine's nested layout
    hparams: dict
    files: dict[str, bytes]  # file name -> contents, as the server serves them


def openai_variables(params: dict) -> Iterator[tuple[str, np.ndarray]]:
    """OpenAI's variable names and stored values, written out by hand (not derived from the code
    under test). Matrices are stored as Conv1D kernels, [1, n_in, n_out]."""
    yield "model/wte", params["wte"]
    yield "model/wpe", params["wpe"]
    for i, block in enumerate(params["blocks"]):
        h = f"model/h{i}"
        for norm in ("ln_1", "ln_2"):
            yield f"{h}/{norm}/g", block[norm]["g"]
            yield f"{h}/{norm}/b", block[norm]["b"]
        for group, layer in (("attn", "c_attn"), ("attn", "c_proj"), ("mlp", "c_fc"),
                             ("mlp", "c_proj")):  # fmt: skip
            yield f"{h}/{group}/{layer}/w", block[group][layer]["w"][np.newaxis]
            yield f"{h}/{group}/{layer}/b", block[group][layer]["b"]
    yield "model/ln_f/g", params["ln_f"]["g"]
    yield "model/ln_f/b", params["ln_f"]["b"]


def write_tf_checkpoint(directory: Path, params: dict) -> None:
    """`checkpoint`, `model.ckpt.{index,data-00000-of-00001,meta}` as OpenAI's script made them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import tensorflow as tf  # once per session: seconds to import

    graph = tf.Graph()
    with graph.as_default():
        values = {name: np.asarray(value, np.float32) for name, value in openai_variables(params)}
        # Zeros, then assigned: an array initializer would embed every value in the .meta graph.
        variables = {
            name: tf.compat.v1.get_variable(name, value.shape, initializer=tf.zeros_initializer())
            for name, value in values.items()
        }
        feeds = {name: tf.compat.v1.placeholder(tf.float32, v.shape) for name, v in values.items()}
        assign = [variables[name].assign(feed) for name, feed in feeds.items()]
        saver = tf.compat.v1.train.Saver(list(variables.values()), save_relative_paths=True)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(assign, {feeds[name]: value for name, value in values.items()})
            saver.save(session, str(directory / "model.ckpt"))
