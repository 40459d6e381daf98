"""A GGUF file's header, read fast and checked against the file: its scalar metadata and the
name, shape, type and place of every tensor, without touching the tensors' bytes.

The `gguf` package's `GGUFReader` also parses every array (the vocabulary, the merges) into
NumPy objects: 2 s for SmolLM2's header, far longer for a 128k-token vocabulary, too slow to
list a store of models. The header is simple (the GGUF spec in ggml's docs/gguf.md):

    "GGUF", u32 version, u64 tensor_count, u64 kv_count
    kv_count x  (string key, u32 value_type, value)          an array: u32 item type, u64 n, items
    tensor_count x (string name, u32 n_dims, u64 dims[n_dims], u32 ggml_type, u64 offset)
    padding to general.alignment, then the tensors' data (offsets from there)

Arrays are stepped over, not kept. Every length is checked against the file before it is
believed, so a truncated file or one that lies about its sizes is refused with the reason here,
before anything the size of a tensor is allocated; the file is memory-mapped, never read whole.
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpt_tui.errors import ModelFileError

MAX_HEADER_BYTES = 256 * 2**20  # a 256k-token vocabulary with its merges is ~10 MB
MAX_DIMS = 4  # ggml's GGML_MAX_DIMS

# GGUF's value types (gguf.GGUFValueType): struct format of each scalar; 8 = string, 9 = array.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}  # fmt: skip
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # as GGUF lists it: the fastest-varying dimension first
    type_name: str  # gguf.GGMLQuantizationType's name: "Q4_K", "F32", ...
    start: int  # absolute offset of its data in the file
    n_bytes: int

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class GGUFHeader:
    path: Path
    file_size: int
    metadata: dict[str, Any]  # scalars and strings; an array is kept as its length only
    array_lengths: dict[str, int]
    tensors: tuple[TensorInfo, ...]

    @property
    def n_params(self) -> int:
        return sum(t.n_elements for t in self.tensors)


def read_header(path: str | Path) -> GGUFHeader:
    """The header of the GGUF file at `path`, every tensor checked to lie inside the file;
    a ModelFileError naming the file and what is wrong otherwise."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            magic, size = file.read(4), file.seek(0, 2)
            if magic != b"GGUF":
                raise ModelFileError(f"{path} is not a GGUF file (it does not start with 'GGUF')")
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _Parser(path, data, size).header()
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {exc.strerror or exc}") from exc


class _Parser:
    def __init__(self, path: Path, data: mmap.mmap, size: int) -> None:
        self.path, self.data, self.size, self.pos = path, data, size, 0

    def fail(self, why: str) -> ModelFileError:
        return ModelFileError(f"{self.path} is damaged or truncated: {why}")

    def take(self, fmt: str) -> Any:
        n = struct.calcsize(fmt)
        if self.pos + n > min(self.size, MAX_HEADER_BYTES):
            if self.pos + n > self.size:
                raise self.fail("the header runs past the end of the file")
            raise ModelFileError(f"{self.path}: a GGUF header over {MAX_HEADER_BYTES >> 20} MB")
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += n
        return value

    def string(self) -> str:
        n = self.take("<Q")
        if self.pos + n > self.size:
            raise self.fail(f"a string of {n} bytes runs past the end of the file")
        raw = self.data[self.pos : self.pos + n]
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def skip(self, value_type: int, count: int) -> None:
        """Step over `count` values of `value_type` (an array's items)."""
        if value_type in _SCALARS:
            n = struct.calcsize(_SCALARS[value_type]) * count
            if self.pos + n > self.size:
                raise self.fail(f"an array of {count} values runs past the end of the file")
            self.pos += n
        elif value_type == _STRING:
            for _ in range(count):
                n = self.take("<Q")
                self.pos += n
            if self.pos > self.size:
                raise self.fail("an array of strings runs past the end of the file")
        elif value_type == _ARRAY:
            for _ in range(count):
                inner, n = self.take("<I"), self.take("<Q")
                self.skip(inner, n)
        else:
            raise self.fail(f"unknown metadata type {value_type}")

    def header(self) -> GGUFHeader:
        self.pos = 4
        version = self.take("<I")
        if version not in (2, 3):
            raise ModelFileError(f"{self.path} is GGUF version {version}; gpt-tui reads 2 and 3")
        n_tensors, n_kv = self.take("<Q"), self.take("<Q")
        # Each entry takes at least 8 bytes: a count beyond the file's size is a lie.
        if n_tensors > self.size // 8 or n_kv > self.size // 8:
            raise self.fail(f"it claims {n_tensors} tensors and {n_kv} metadata entries")
        metadata: dict[str, Any] = {}
        lengths: dict[str, int] = {}
        for _ in range(n_kv):
            key, value_type = self.string(), self.take("<I")
            if value_type == _ARRAY:
                item_type, count = self.take("<I"), self.take("<Q")
                self.skip(item_type, count)
                lengths[key] = count
            elif value_type == _STRING:
                metadata[key] = self.string()
            elif value_type in _SCALARS:
                metadata[key] = self.take(_SCALARS[value_type])
            else:
                raise self.fail(f"unknown metadata type {value_type} for {key}")
        infos = []
        for _ in range(n_tensors):
            name, n_dims = self.string(), self.take("<I")
            if not 1 <= n_dims <= MAX_DIMS:
                raise self.fail(f"tensor {name} has {n_dims} dimensions")
            shape = tuple(self.take("<Q") for _ in range(n_dims))
            infos.append((name, shape, self.take("<I"), self.take("<Q")))
        alignment = int(metadata.get("general.alignment", 32)) or 32
        data_start = -(-self.pos // alignment) * alignment
        tensors = tuple(self.tensor(*info, data_start) for info in infos)
        return GGUFHeader(self.path, self.size, metadata, lengths, tensors)

    def tensor(
        self, name: str, shape: tuple[int, ...], type_id: int, offset: int, data_start: int
    ) -> TensorInfo:
        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType  # constants only: fast

        try:
            qtype = GGMLQuantizationType(type_id)
            block, block_bytes = GGML_QUANT_SIZES[qtype]
        except (ValueError, KeyError):
            raise ModelFileError(
                f"{self.path}: tensor {name} has the ggml type {type_id}, which the gguf "
                "package does not know"
            ) from None
        n_elements = math.prod(shape)
        if n_elements % block:
            raise self.fail(f"tensor {name} {list(shape)} is not whole {qtype.name} blocks")
        start, n_bytes = data_start + offset, n_elements // block * block_bytes
        if start + n_bytes > self.size:
            raise self.fail(
                f"tensor {name} {list(shape)} {qtype.name} ends at byte {start + n_bytes:,}, "
                f"past the end of the file ({self.size:,} bytes)"
            )
        return TensorInfo(name, shape, qtype.name, start, n_bytes)
