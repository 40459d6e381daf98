"""A model too large for the memory available is refused with the figures before anything is
converted or loaded: the figures from a /proc/meminfo-format file, and a GGUF whose header
declares more float32 weights than the machine holds (a sparse file: nothing is allocated)."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
from model_stores import Stores
from tiny_gguf import tiny_tensors, write_tiny_gguf

from gpt_tui.errors import NotEnoughMemoryError
from gpt_tui.models import loading, memory
from gpt_tui.models.stores.listing import store_models

MEMINFO = "MemTotal:       32000000 kB\nMemFree:  1000 kB\nMemAvailable:   {} kB\n"


def meminfo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, available_kb: int) -> None:
    path = tmp_path / "meminfo"
    path.write_text(MEMINFO.format(available_kb))
    monkeypatch.setattr(memory, "MEMINFO", path)


def test_the_refusal_gives_the_figures():
    memory.check_fits("m", 10**9, available=2 * 10**9)  # fits: nothing said
    with pytest.raises(NotEnoughMemoryError) as caught:
        memory.check_fits("llama3:70b", 28_100_000_000, available=21_400_000_000)
    assert "llama3:70b needs 28.1 GB as float32; 21.4 GB available" in str(caught.value)


def test_available_memory_is_memavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    meminfo(tmp_path, monkeypatch, 21385496)
    assert memory.available_bytes() == 21385496 * 1024
    monkeypatch.setattr(memory, "MEMINFO", tmp_path / "absent")
    assert memory.available_bytes() is None  # unknown: nothing is refused
    memory.check_fits("m", 10**15)


def test_kv_cache_counts_a_long_conversation_at_most_the_context():
    llama = {"n_layer": 2, "n_kv_head": 3, "head_dim": 8, "n_ctx": 100_000}
    assert memory.kv_cache_bytes(llama) == 2 * 2 * 3 * 8 * memory.KV_POSITIONS * 4
    gpt2 = {"n_layer": 12, "n_head": 12, "n_embd": 768, "n_ctx": 1024}
    assert memory.kv_cache_bytes(gpt2) == 2 * 12 * 768 * 1024 * 4


def huge_gguf(path: Path, n_bytes: int) -> Path:
    """A GGUF whose one F32 tensor is `n_bytes` long, its data a hole (a sparse file)."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor_info("token_embd.weight", (n_bytes // 4,), np.dtype(np.float32), n_bytes)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    with path.open("r+b") as f:
        end = f.seek(0, 2)
        f.truncate(-(-end // 32) * 32 + n_bytes)
    return path


def test_a_gguf_larger_than_memory_is_refused_before_converting(stores: Stores):
    total = int(Path("/proc/meminfo").read_text().split()[1]) * 1024  # MemTotal
    path = huge_gguf(stores.llama_cache / "huge.gguf", 2 * total // 4 * 4)
    [listed] = store_models().models
    assert listed.summary.memory_bytes >= 2 * total  # listed with what it needs
    with pytest.raises(NotEnoughMemoryError, match=r"converting huge needs .* GB as float32 .*"
                       r"GB available"):  # fmt: skip
        loading.load_model(str(path))


def test_a_converted_model_larger_than_memory_is_refused_before_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = write_tiny_gguf(tmp_path / "tiny.gguf", tiny_tensors())
    loading.load_model(str(path))  # converted, and loaded, with the memory there is
    meminfo(tmp_path, monkeypatch, 100)  # 100 kB left
    with pytest.raises(NotEnoughMemoryError, match=r"^tiny needs .* as float32 .*102.4 kB avail"):
        loading.load_model(str(path))


def test_a_hugging_face_model_larger_than_memory_is_refused_before_converting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    meminfo(tmp_path, monkeypatch, 100)  # 100 kB left
    with pytest.raises(NotEnoughMemoryError, match=r"^converting gpt2 needs .* as float32"):
        loading.load_model(Path(__file__).parents[1] / "fixtures" / "hf" / "gpt2")
    assert not list((tmp_path / "home").rglob("model.safetensors"))  # nothing converted
