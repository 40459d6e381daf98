"""A GGUF header read fast and checked against the file: the same tensors as gguf-py's reader
sees, and a file that is truncated or lies about its sizes refused with the reason before
anything the size of a tensor is allocated."""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import pytest
from tiny_gguf import tiny_tensors, write_tiny_gguf

from gpt_tui.errors import ModelFileError
from gpt_tui.models.gguf_file import read_gguf
from gpt_tui.models.gguf_header import read_header


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("header") / "tiny.gguf"
    return write_tiny_gguf(path, tiny_tensors(), gguf.GGMLQuantizationType.Q8_0)


def test_the_header_holds_what_gguf_pys_reader_sees(tiny: Path):
    header = read_header(tiny)
    reader = gguf.GGUFReader(tiny)
    assert [(t.name, t.type_name, t.start, t.n_bytes) for t in header.tensors] == [
        (t.name, t.tensor_type.name, int(t.data_offset), int(t.n_bytes)) for t in reader.tensors
    ]
    assert header.metadata["general.architecture"] == "llama"
    assert header.metadata["llama.embedding_length"] == 64
    assert header.array_lengths["tokenizer.ggml.tokens"] == len(
        reader.fields["tokenizer.ggml.tokens"].contents()
    )
    assert header.n_params == sum(a.size for a in tiny_tensors().values())


def claiming(tiny: Path, target: Path, name: str, n_out: int) -> Path:
    """A copy of `tiny` whose header says tensor `name` has `n_out` rows."""
    data = bytearray(tiny.read_bytes())
    key = struct.pack("<Q", len(name)) + name.encode()
    at = data.index(key) + len(key) + 4 + 8  # n_dims, then dims[0] (n_in), then dims[1]
    data[at : at + 8] = struct.pack("<Q", n_out)
    target.write_bytes(bytes(data))
    return target


def test_a_header_claiming_a_huge_tensor_is_refused_before_reading(tiny: Path, tmp_path: Path):
    liar = claiming(tiny, tmp_path / "liar.gguf", "token_embd.weight", 2**40)
    for read in (read_header, read_gguf):
        with pytest.raises(
            ModelFileError, match=r"liar\.gguf .*token_embd\.weight .* past the end"
        ):
            read(liar)


def test_counts_beyond_the_file_are_refused(tiny: Path, tmp_path: Path):
    data = bytearray(tiny.read_bytes())
    data[8:16] = struct.pack("<Q", 2**60)  # tensor_count
    (tmp_path / "count.gguf").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"claims 1152921504606846976 tensors"):
        read_header(tmp_path / "count.gguf")


@pytest.mark.parametrize("keep", [0, 3, 30, 5000, 0.5, 0.999])
def test_a_truncated_file_is_refused(tiny: Path, tmp_path: Path, keep: float):
    data = tiny.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: int(keep * len(data)) if keep < 1 else int(keep)])
    with pytest.raises(ModelFileError, match=r"cut\.gguf (is damaged or truncated|is not a GGUF)"):
        read_header(cut)
