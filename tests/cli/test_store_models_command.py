"""`gpt-tui models` lists the GGUF models of Ollama, LM Studio and llama.cpp (fixture stores in
their real layouts), notices for what it skipped on stderr; `-m` opens one by the name shown."""

from __future__ import annotations

import gguf
import pytest
from model_stores import Stores, add_file, add_ollama_model
from tiny_gguf import tiny_tensors, write_tiny_gguf

from gpt_tui.cli import main


@pytest.fixture
def filled(stores: Stores, tmp_path) -> Stores:
    tiny = write_tiny_gguf(tmp_path / "tiny.gguf", tiny_tensors(), gguf.GGMLQuantizationType.Q8_0)
    add_ollama_model(stores.ollama, "tiny:q8", tiny)
    add_ollama_model(stores.ollama, "gone:1b", None)  # a pull that stopped: no blob
    add_file(stores.lm_studio, "someone/Tiny-GGUF/tiny-Q8_0.gguf", tiny)
    return stores


def test_models_lists_the_stores(filled: Stores, capsys: pytest.CaptureFixture[str]):
    assert main(["models"]) == 0
    out, err = capsys.readouterr()
    assert "tiny:q8" in out and "Ollama" in out and "Q8_0" in out and "llama" in out
    folded = "".join(out.split())  # a long name is folded over lines
    assert "LM Studio" in out and "~/.lmstudio/models/someone/Tiny-GGUF/tiny-Q8_0.gguf" in folded
    assert err.count("notice:") == 1 and "gone:1b" in err and "missing" in err


def test_generate_opens_an_ollama_model_by_its_name(
    filled: Stores, capsys: pytest.CaptureFixture[str]
):
    code = main(["generate", "-m", "tiny:q8", "--max-tokens", "3", "--temperature", "0", "the"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.strip()
    code = main(["generate", "-m", "gone:1b", "--max-tokens", "3", "the"])
    _, err = capsys.readouterr()
    assert (
        code != 0 and "gone:1b" in err and "missing" in err and len(err.strip().splitlines()) == 1
    )


def test_download_and_rm_leave_the_store_alone(filled: Stores, capsys: pytest.CaptureFixture[str]):
    assert main(["download", "tiny:q8"]) == 0
    assert "nothing to download" in capsys.readouterr().out
    assert main(["rm", "tiny:q8"]) == 0
    assert "gpt-tui holds no copy of tiny:q8" in capsys.readouterr().out
    assert main(["generate", "-m", "tiny:q8", "--max-tokens", "1", "the"]) == 0
    capsys.readouterr()
    assert main(["rm", "tiny:q8"]) == 0
    out = capsys.readouterr().out
    assert "removed gpt-tui's copy of tiny:q8" in out and "left as it is" in out
    assert len(list((filled.ollama / "blobs").iterdir())) == 3  # the store is untouched
