"""Safetensors files as Hugging Face writes them, read one shard at a time into float32.

The format: a little-endian u64 header length, a JSON header ({name: {"dtype", "shape",
"data_offsets": [begin, end]}}, plus "__metadata__"), then the raw little-endian data. We read
the header ourselves, check every tensor's byte range against its dtype, shape and the file's
length (a truncated download fails here, naming the file, before anything is converted), and
memory-map the data: NumPy has no bfloat16, so BF16 is widened by hand (its 16 bits are the top
half of a float32). The `safetensors` package would do the checking but not the widening.

A sharded checkpoint lists its tensors' files in `model.safetensors.index.json`
({"weight_map": {name: file}}).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gpt_tui.errors import ModelFileError

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
MAX_HEADER_BYTES = 100_000_000  # the safetensors package's own limit

_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
           "F64": np.dtype("<f8")}  # fmt: skip


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # safetensors' name: "F32", "F16", "BF16", ...
    shape: tuple[int, ...]
    begin: int  # byte offsets in the file's data section
    end: int

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def weight_files(model_dir: Path) -> list[Path]:
    """The safetensors files of a checkpoint directory: the index's shards, or the single file
    (an error when neither is there)."""
    names = indexed_shards(model_dir)
    if names is not None:
        missing = [n for n in names if not (model_dir / n).is_file()]
        if missing:
            raise ModelFileError(
                f"{model_dir} lacks the shard {missing[0]} that {INDEX_FILE} lists "
                f"({len(missing)} of {len(names)} missing); fetch the model again"
            )
        return [model_dir / n for n in names]
    if (model_dir / SINGLE_FILE).is_file():
        return [model_dir / SINGLE_FILE]
    found = sorted(model_dir.glob("*.safetensors"))
    if len(found) == 1:
        return found
    return []


def indexed_shards(model_dir: Path) -> list[str] | None:
    """The shard files `model.safetensors.index.json` names, or None without an index."""
    index = model_dir / INDEX_FILE
    if not index.is_file():
        return None
    try:
        return sorted(set(json.loads(index.read_text())["weight_map"].values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelFileError(f"{index} is damaged ({exc}); fetch the model again") from exc


def read_header(path: Path) -> list[TensorInfo]:
    """Every tensor a file holds, checked against the file's length; ModelFileError if not."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise ValueError("shorter than a header")
            (header_len,) = struct.unpack("<Q", raw)
            if header_len > min(MAX_HEADER_BYTES, size - 8):
                raise ValueError(f"a header of {header_len} bytes in a file of {size}")
            header = json.loads(f.read(header_len))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(
            f"{path} is not a readable safetensors file ({exc}); fetch the model again"
        ) from exc
    data_bytes = size - 8 - header_len
    tensors = []
    try:
        for name, info in header.items():
            if name == "__metadata__":
                continue
            begin, end = (int(n) for n in info["data_offsets"])
            tensor = TensorInfo(name, info["dtype"], tuple(int(n) for n in info["shape"]),
                                begin, end)  # fmt: skip
            itemsize = _DTYPES[tensor.dtype].itemsize if tensor.dtype in _DTYPES else None
            if itemsize is None:
                raise ModelFileError(
                    f"{path}: tensor {name} is {tensor.dtype}; gpt-tui reads F32, F16 and BF16 "
                    "weights (not quantized ones)"
                )
            if end - begin != tensor.n_elements * itemsize or not 0 <= begin <= end:
                raise ValueError(f"tensor {name}'s byte range does not fit its shape")
            if end > data_bytes:
                raise ModelFileError(
                    f"{path} is truncated ({size} bytes; tensor {name} needs "
                    f"{8 + header_len + end}); fetch the model again"
                )
            tensors.append(tensor)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelFileError(f"{path} has a damaged header ({exc}); fetch the model again") from exc
    return tensors


def read_float32(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    """(name, float32 array) for every tensor of one file, each a fresh copy: the file's
    mapping is closed when the iteration ends, so at most one shard is mapped at a time."""
    tensors = read_header(path)
    with path.open("rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
    start = 8 + header_len
    try:
        mapped = np.memmap(path, dtype=np.uint8, mode="r")
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"cannot read {path}: {exc}") from exc
    try:
        for t in tensors:
            raw = mapped[start + t.begin : start + t.end].view(_DTYPES[t.dtype]).reshape(t.shape)
            yield t.name, _to_float32(raw, t.dtype)
    finally:
        del mapped


def _to_float32(raw: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "BF16":
        # bfloat16 is the upper half of a float32: shift the bits into place, exactly (in one
        # allocation: the largest tensor is the transient).
        wide = np.empty(raw.shape, dtype=np.uint32)
        wide[...] = raw
        wide <<= 16
        return wide.view(np.float32)
    return np.array(raw, dtype=np.float32)  # a copy, even when already float32
