"""The converted-model directory: the one format the engine loads, fast and without pickle.

A directory holds

    hparams.json        {"architecture": "gpt2"|"llama", ...the architecture's hyper-parameters}
    model.safetensors   every weight, float32, under a flat dotted name ("blocks.3.attn.c_attn.w"),
                        matrices in column blocks (engine/blocked.py) so that loading is a
                        read; a model whose kernel plan chose the transpose's rows rearranges
                        them in place as it is built (engine/layout.py: no second copy), so
                        one file serves every machine's plan
    tokenizer files     encoder.json + vocab.bpe (GPT-2), or tokenizer.json (GGUF-derived)

Nested params (the layout of OpenAI's checkpoint, see the architecture notes) are flattened to
dotted names on write and rebuilt on read, so the engine sees the same dict either way.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from gpt_tui.engine.blocked import BLOCK, BlockedMatrix, float32_arena
from gpt_tui.engine.params import Params, flatten_params, unflatten_params
from gpt_tui.engine.rows import RowMatrix
from gpt_tui.errors import ModelFileError

HPARAMS_FILE = "hparams.json"
WEIGHTS_FILE = "model.safetensors"
LAYOUT = f"blocks of {BLOCK} columns"
"""How matrices are laid out on disk: a converted source records it, so that a change of layout
converts again what can be (a GGUF, a local checkpoint)."""
BLOCKED_KEY = "gpt_tui.blocked"  # metadata: {name: n_out} of the tensors held as column blocks


def write_model_dir(
    target: Path,
    params: Params,
    hparams: dict[str, Any],
    extra_files: dict[str, Path | bytes] | None = None,
) -> Path:
    """Write a converted-model directory atomically: a temp dir beside `target`, then a rename.

    `extra_files` maps file names to a source path (copied) or bytes (written): the tokenizer
    files. An interrupted write leaves no `target`, so the next run starts clean.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; a model cache is ordinary data
        write_safetensors(tmp / WEIGHTS_FILE, flatten_params(params))
        (tmp / HPARAMS_FILE).write_text(json.dumps(hparams, indent=2) + "\n")
        for name, source in (extra_files or {}).items():
            if isinstance(source, bytes):
                (tmp / name).write_bytes(source)
            else:
                shutil.copyfile(source, tmp / name)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def write_safetensors(
    path: Path, tensors: dict[str, np.ndarray | BlockedMatrix | RowMatrix]
) -> None:
    """Write float32 tensors in the safetensors format, one tensor at a time.

    The `safetensors` package's writer first copies every tensor into one bytes object: twice
    the weights in memory, 12 GB for GPT-2 1558M. The format is simple enough to stream: a
    little-endian u64 header length, a JSON header of dtype/shape/byte offsets (padded to 8
    bytes), then the raw data in header order. Reading stays with the package, which validates.

    A `BlockedMatrix` is stored as its blocks, its logical column count in the header's
    metadata, so that loading maps the engine's layout straight from the file, with no copy;
    a `RowMatrix` (engine/rows.py) is stored as the same blocks.
    """
    held = (BlockedMatrix, RowMatrix)
    # A RowMatrix is stored in blocks too, as the view of its rows that reads them so: copied
    # into the file's order one tensor at a time, as it is written.
    arrays = {name: t.blocks if isinstance(t, BlockedMatrix) else t.stacked  # [n_b, n_in, B]
              if isinstance(t, RowMatrix) else t for name, t in tensors.items()}  # fmt: skip
    blocked = {name: t.shape[1] for name, t in tensors.items() if isinstance(t, held)}
    header: dict[str, Any] = {"__metadata__": {BLOCKED_KEY: json.dumps(blocked)}}
    offset = 0
    for name in sorted(arrays):
        n_bytes = arrays[name].size * 4
        header[name] = {
            "dtype": "F32",
            "shape": list(arrays[name].shape),
            "data_offsets": [offset, offset + n_bytes],
        }
        offset += n_bytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for name in sorted(arrays):
            f.write(np.ascontiguousarray(arrays[name], dtype="<f4").data)


def read_hparams(model_dir: Path) -> dict[str, Any]:
    path = Path(model_dir) / HPARAMS_FILE
    try:
        hparams = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ModelFileError(f"{model_dir} is not a model directory (no {HPARAMS_FILE})") from exc
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"cannot read {path}: {exc}") from exc
    if not isinstance(hparams, dict):
        raise ModelFileError(f"{path} does not hold a JSON object")
    hparams.setdefault("architecture", "gpt2")
    return hparams


def read_params(model_dir: Path) -> Params:
    """Every weight as a read-only float32 array, read straight into place.

    Read, not memory-mapped, into one allocation (`float32_arena`): a decode step streams its
    weights from huge pages 11% faster, and a mapped file has none. Each tensor is read into its
    place with no intermediate copy, so the weights are held once (the page cache's copy is the
    kernel's, and reclaimable). The `safetensors` package validates the header and that the
    file holds every byte it promises.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(model_dir) / WEIGHTS_FILE
    if not path.exists():
        raise ModelFileError(f"{model_dir} has no {WEIGHTS_FILE}")
    try:
        with safe_open(str(path), framework="np"):
            pass  # validation only: a truncated or garbled file fails here
        flat: dict[str, np.ndarray | BlockedMatrix] = {}
        with open(path, "rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(header_len))
            blocked = json.loads(header.pop("__metadata__", {}).get(BLOCKED_KEY, "{}"))
            tensors = sorted(header.items(), key=lambda item: item[1]["data_offsets"])
            wrong = [n for n, info in tensors if info["dtype"] != "F32"]
            if wrong:
                raise ValueError(f"tensor {wrong[0]} is {header[wrong[0]]['dtype']}, expected F32")
            places = float32_arena([tuple(info["shape"]) for _, info in tensors])
            for (name, info), array in zip(tensors, places, strict=True):
                begin, end = info["data_offsets"]
                f.seek(8 + header_len + begin)
                if array.nbytes != end - begin or f.readinto(array.data.cast("B")) != end - begin:
                    raise ValueError(f"tensor {name} does not hold {info['shape']} floats")
                array.flags.writeable = False
                flat[name] = BlockedMatrix(array, int(blocked[name])) if name in blocked else array
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"{path} is damaged: {exc}") from exc
    return unflatten_params(flat)
