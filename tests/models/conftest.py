"""Fixtures for the model store: a tiny GPT-2 in OpenAI's own TensorFlow checkpoint format, served
from a real HTTP server on 127.0.0.1, and a private GPT_TUI_HOME for every test.

The checkpoint is written by TensorFlow itself (tf.compat.v1 variables and Saver, in a graph), once
per session: importing TensorFlow costs seconds.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from http_server import FileServer
from openai_checkpoint import OPENAI_FILES, TINY_HPARAMS, Checkpoint, write_tf_checkpoint

from gpt_tui.models.random_weights import random_gpt2_params


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
