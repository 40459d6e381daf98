"""Fixtures for the model store: a tiny GPT-2 in OpenAI's own TensorFlow checkpoint format, served
from a real HTTP server on 127.0.0.1, and a private GPT_TUI_HOME for every test.

The checkpoint is written by TensorFlow itself (tf.compat.v1 variables and Saver, in a graph), once
per session: importing TensorFlow costs seconds.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from http_server import FileServer

from gpt_tui.models.random_weights import random_gpt2_params

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


@pytest.fixture(scope="session")
def gpt2_checkpoint(tmp_path_factory: pytest.TempPathFactory, gpt2_tokenizer_files) -> Checkpoint:
    directory = tmp_path_factory.mktemp("openai") / "124M"
    directory.mkdir()
    params = random_gpt2_params(TINY_HPARAMS, seed=11, scale=0.3)
    write_tf_checkpoint(directory, params)
    (directory / "hparams.json").write_text(json.dumps(TINY_HPARAMS, indent=2))
    for source in gpt2_tokenizer_files:
        shutil.copyfile(source, directory / source.name)
    assert sorted(p.name for p in directory.iterdir()) == sorted(OPENAI_FILES)
    files = {name: (directory / name).read_bytes() for name in OPENAI_FILES}
    return Checkpoint(directory, params, TINY_HPARAMS, files)


@pytest.fixture
def checkpoint_copy(tmp_path: Path, gpt2_checkpoint: Checkpoint) -> Path:
    """A private copy of the checkpoint directory, free to damage."""
    return Path(shutil.copytree(gpt2_checkpoint.directory, tmp_path / "ckpt" / "124M"))


@pytest.fixture
def server(gpt2_checkpoint: Checkpoint) -> Iterator[FileServer]:
    """OpenAI's bucket in miniature: the tiny checkpoint at /124M/{file}."""
    files = {f"/124M/{name}": data for name, data in gpt2_checkpoint.files.items()}
    server = FileServer(files)
    yield server
    server.close()


@pytest.fixture(autouse=True)
def gpt_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own GPT_TUI_HOME, never the user's cache, and talks to 127.0.0.1
    directly (a proxy from the environment must not intercept the test server)."""
    home = tmp_path / "home"
    monkeypatch.setenv("GPT_TUI_HOME", str(home))
    monkeypatch.delenv("GPT_TUI_GPT2_URL", raising=False)
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return home
