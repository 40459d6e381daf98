"""`names.describe` deciding what a name means, in one place."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpt_tui.errors import ModelFileError, UnknownModelError
from gpt_tui.models import names


def test_describe_decides_in_one_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    assert names.describe("gpt2-xl").kind == "catalog" and names.describe("GPT2").name == "124M"
    assert names.describe("HuggingFaceTB/SmolLM2-135M").kind == "hf"
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert names.describe(str(gguf)) == names.ModelRef("path", str(gguf), path=gguf)
    # A relative directory that exists is a path, even when it could be a repo id.
    (tmp_path / "org" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert names.describe("org/name").kind == "path"
    assert names.describe("org/other").kind == "hf"
    with pytest.raises(ModelFileError, match="does not exist"):
        names.describe("./missing")
    with pytest.raises(ModelFileError, match="not a Hugging Face ORG/NAME"):
        names.describe("a/b/c")
    with pytest.raises(UnknownModelError, match="did you mean '124M'"):
        names.describe("125M")
