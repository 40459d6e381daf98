"""The GGUF models of Ollama, LM Studio and llama.cpp, found in fixture stores of their real
layouts: named as `-m` opens them, summed up from their headers, and every broken store or entry
skipped with a notice, never an exception."""

from __future__ import annotations

import os
from pathlib import Path

import gguf
import pytest
from model_stores import Stores, add_file, add_ollama_model
from tiny_gguf import WIDE, tiny_tensors, write_tiny_gguf

from gpt_tui.models import availability, loading
from gpt_tui.models.names import describe
from gpt_tui.models.stores import found, ollama
from gpt_tui.models.stores.listing import store_models

Q = gguf.GGMLQuantizationType


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ggufs")
    tensors = tiny_tensors(seed=5, dims=WIDE)
    return {
        q.name: write_tiny_gguf(root / f"tiny-{q.name}.gguf", tensors, q, dims=WIDE)
        for q in (Q.Q4_0, Q.Q8_0, Q.Q4_K, Q.F16)
    } | {"qwen": write_tiny_gguf(root / "qwen.gguf", tensors, architecture="qwen2", dims=WIDE)}


@pytest.fixture
def filled(stores: Stores, ggufs: dict[str, Path]) -> Stores:
    add_ollama_model(stores.ollama, "tiny:q4_0", ggufs["Q4_0"])
    add_ollama_model(stores.ollama, "someone/tiny:latest", ggufs["Q8_0"],
                     "registry.ollama.ai/someone/tiny")  # fmt: skip
    add_ollama_model(stores.ollama, "tiny:q4_k", ggufs["Q4_K"], "hf.co/org/Tiny-GGUF")
    add_file(stores.lm_studio, "lmstudio-community/Tiny-GGUF/Tiny-F16.gguf", ggufs["F16"])
    add_file(stores.llama_cache, "org_Qwen-GGUF_qwen.gguf", ggufs["qwen"])
    return stores


def test_every_store_is_listed_with_names_that_open(filled: Stores):
    listing = store_models()
    assert listing.notices == []
    by_name = {m.name: m for m in listing.models}
    lm_studio = "~/.lmstudio/models/lmstudio-community/Tiny-GGUF/Tiny-F16.gguf".replace("/", os.sep)
    assert sorted(by_name) == sorted([
        "tiny:q4_0", "someone/tiny:latest", "hf.co/org/Tiny-GGUF:q4_k", lm_studio,
        str(filled.llama_cache / "org_Qwen-GGUF_qwen.gguf"),
    ])  # fmt: skip
    q4 = by_name["tiny:q4_0"]
    assert (q4.store, q4.summary.architecture, q4.summary.quantization) == (
        "Ollama",
        "llama",
        "Q4_0",
    )
    n_params = sum(a.size for a in tiny_tensors(dims=WIDE).values())
    assert q4.summary.n_params == n_params and q4.summary.supported
    assert q4.summary.memory_bytes > 4 * n_params  # and a kv cache
    assert by_name["hf.co/org/Tiny-GGUF:q4_k"].summary.quantization == "Q4_K"
    assert by_name[lm_studio].store == "LM Studio"
    assert by_name[lm_studio].summary.quantization == "F16"
    qwen = by_name[str(filled.llama_cache / "org_Qwen-GGUF_qwen.gguf")]
    assert qwen.store == "llama.cpp" and not qwen.summary.supported
    assert "'qwen2' model" in qwen.summary.problem  # listed with the reason, not hidden


def test_ollama_names_open_in_every_spelling(filled: Stores):
    blob = ollama.find("tiny:q4_0")
    assert blob is not None and blob.parent == filled.ollama / "blobs"
    assert blob.name.startswith("sha256-")
    assert ollama.find("someone/tiny") == ollama.find("someone/tiny:latest") is not None
    assert ollama.find("hf.co/org/Tiny-GGUF:q4_k") is not None
    assert ollama.find("tiny") is None  # no tiny:latest
    assert ollama.find("../../etc:passwd") is None
    ref = describe("tiny:q4_0")
    assert (ref.kind, ref.path) == ("store", blob)
    assert availability.is_cached("tiny:q4_0") and availability.status("tiny:q4_0") == "here"
    loaded = loading.load_model("tiny:q4_0")
    assert loaded.name == "tiny:q4_0" and loaded.hparams["n_embd"] == WIDE["n_embd"]
    lm = describe("~/.lmstudio/models/lmstudio-community/Tiny-GGUF/Tiny-F16.gguf")
    assert lm.kind == "path" and lm.path is not None and lm.path.is_file()


def test_missing_stores_are_no_stores(stores: Stores):
    for path in (stores.ollama, stores.llama_cache):
        path.rmdir()
    assert store_models().models == [] and store_models().notices == []


def test_a_half_written_ollama_model_is_skipped_with_a_notice(filled: Stores):
    add_ollama_model(filled.ollama, "broken:1b", None)  # names a blob that was never written
    garbled = add_ollama_model(filled.ollama, "garbled:1b", None)
    garbled.write_text("{not json")
    listing = store_models()
    assert "tiny:q4_0" in {m.name for m in listing.models}
    assert len(listing.notices) == 2
    assert any("broken:1b" in n and "missing" in n for n in listing.notices)
    assert any("garbled:1b" in n and "not a manifest" in n for n in listing.notices)
    with pytest.raises(Exception, match="broken:1b.*missing"):
        describe("broken:1b")


def test_a_dangling_file_in_a_store_is_skipped_with_a_notice(filled: Stores):
    (filled.lm_studio / "someone" / "Gone-GGUF").mkdir(parents=True)
    (filled.lm_studio / "someone" / "Gone-GGUF" / "gone.gguf").symlink_to(filled.home / "nowhere")
    listing = store_models()
    assert len(listing.notices) == 1 and "LM Studio: skipped" in listing.notices[0]
    assert "gone.gguf" in listing.notices[0]
    assert "tiny:q4_0" in {m.name for m in listing.models}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads through chmod 000")
def test_an_unreadable_store_is_skipped_with_a_notice(filled: Stores):
    (filled.lm_studio / "lmstudio-community").chmod(0)
    try:
        listing = store_models()
    finally:
        (filled.lm_studio / "lmstudio-community").chmod(0o755)
    assert any("LM Studio: skipped" in n for n in listing.notices)
    assert "tiny:q4_0" in {m.name for m in listing.models}


def test_an_enormous_store_is_cut_short_with_a_notice(
    filled: Stores, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(found, "MAX_ENTRIES", 5)
    for i in range(10):
        (filled.llama_cache / f"notes-{i}.txt").write_text("")
    listing = store_models()
    assert any("llama.cpp" in n and "over 5 files" in n for n in listing.notices)


def test_a_file_that_lies_is_listed_with_the_reason(filled: Stores, ggufs: dict[str, Path]):
    data = ggufs["Q8_0"].read_bytes()
    (filled.llama_cache / "cut.gguf").write_bytes(data[: len(data) // 2])
    (filled.llama_cache / "empty.gguf").write_bytes(b"")
    by_name = {Path(m.name).name: m.summary for m in store_models().models}
    assert "past the end of the file" in by_name["cut.gguf"].problem
    assert "not a GGUF file" in by_name["empty.gguf"].problem
    # later parts of a split model are not models of their own
    add_file(filled.llama_cache, "big-00002-of-00002.gguf", ggufs["Q8_0"])
    assert "big-00002-of-00002.gguf" not in {Path(m.name).name for m in store_models().models}
