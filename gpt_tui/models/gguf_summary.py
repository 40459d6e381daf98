"""What a GGUF file is, from its header alone (fast: `gguf_header.py`): architecture,
parameters, quantization, size, the memory it needs as float32, and, when gpt-tui cannot run
it, why. For the listings of other tools' stores, and the checks before a conversion.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from gpt_tui.errors import ModelFileError
from gpt_tui.models.gguf_file import PRE_TOKENIZERS
from gpt_tui.models.gguf_header import GGUFHeader, read_header
from gpt_tui.models.memory import kv_cache_bytes

ARCHITECTURES = ("llama",)  # what gguf_file.read_gguf converts


@dataclass(frozen=True)
class GGUFSummary:
    path: Path
    architecture: str  # "llama", "qwen2", ... ("?" when the header cannot be read)
    n_params: int
    quantization: str  # "Q4_K_M", "Q8_0", "F16", ...
    size_bytes: int
    memory_bytes: int  # float32 weights plus a long conversation's kv cache
    problem: str  # why gpt-tui cannot run it ("" when it can)

    @property
    def supported(self) -> bool:
        return not self.problem


def summarize_gguf(path: Path) -> GGUFSummary:
    """Never raises for a bad file: an unreadable or lying one is summed up with the reason."""
    try:
        header = read_header(path)
    except ModelFileError as exc:
        size = path.stat().st_size if path.is_file() else 0
        # The listing names the file already: the reason alone ("damaged or truncated: ...").
        reason = str(exc).removeprefix(str(path)).removeprefix(":").strip().removeprefix("is ")
        return GGUFSummary(path, "?", 0, "?", size, 0, reason)
    architecture = str(header.metadata.get("general.architecture", "?"))
    return GGUFSummary(
        path,
        architecture,
        header.n_params,
        quantization(header),
        header.file_size,
        4 * header.n_params + kv_cache_bytes(hparams_of(header)),
        problem(header),
    )


def quantization(header: GGUFHeader) -> str:
    """The file's quantization as its maker named it (`general.file_type`: "Q4_K_M"), else the
    type holding most of its bytes."""
    from gguf import LlamaFileType

    try:
        file_type = LlamaFileType(int(header.metadata["general.file_type"]))
        return file_type.name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except (KeyError, ValueError, TypeError):
        pass
    weight: Counter[str] = Counter()
    for t in header.tensors:
        weight[t.type_name] += t.n_bytes
    return weight.most_common(1)[0][0] if weight else "?"


def hparams_of(header: GGUFHeader) -> dict[str, int]:
    """The few hyper-parameters the memory estimate needs, under the engine's names."""
    arch = header.metadata.get("general.architecture", "")

    def get(key: str) -> int:
        value = header.metadata.get(f"{arch}.{key}", 0)
        return int(value) if isinstance(value, int | float) else 0

    n_embd, n_head = get("embedding_length"), get("attention.head_count")
    return {
        "n_layer": get("block_count"),
        "n_ctx": get("context_length"),
        "n_head": n_head,
        "n_kv_head": get("attention.head_count_kv") or n_head,
        "head_dim": get("attention.key_length") or (n_embd // n_head if n_head else 0),
    }


@functools.cache
def dequantizable(type_name: str) -> bool:
    """Whether the gguf package dequantizes this type (asked of it: one block of zeros)."""
    import numpy as np
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf.quants import dequantize

    qtype = GGMLQuantizationType[type_name]
    try:
        dequantize(np.zeros((1, GGML_QUANT_SIZES[qtype][1]), dtype=np.uint8), qtype)
    except NotImplementedError:
        return False
    return True


def problem(header: GGUFHeader) -> str:
    """Why gpt-tui cannot run this file ("" when, as far as the header tells, it can)."""
    meta = header.metadata
    arch = meta.get("general.architecture")
    if arch not in ARCHITECTURES:
        return f"a '{arch}' model: gpt-tui runs the {', '.join(ARCHITECTURES)} architecture"
    if int(meta.get("split.count", 1) or 1) > 1:
        return f"split into {meta['split.count']} files: gpt-tui reads single-file GGUFs"
    unreadable = sorted(t for t in {t.type_name for t in header.tensors} if not dequantizable(t))
    if unreadable:
        return f"tensors of type {', '.join(unreadable)}, which the gguf package cannot dequantize"
    if "tokenizer.ggml.model" not in meta:
        return "no tokenizer in its metadata"
    if meta.get("tokenizer.ggml.model") != "gpt2":
        return (
            f"a '{meta.get('tokenizer.ggml.model')}' tokenizer: gpt-tui reads byte-level BPE only"
        )
    pre = meta.get("tokenizer.ggml.pre", "gpt-2")
    if pre not in PRE_TOKENIZERS:
        return f"the pre-tokenizer '{pre}': gpt-tui knows {', '.join(PRE_TOKENIZERS)}"
    if any(t.name == "rope_freqs.weight" for t in header.tensors) or meta.get(
        f"{arch}.rope.scaling.type", "none"
    ) not in ("none", ""):
        return "a rope variant gpt-tui does not implement (scaled, or with frequency factors)"
    return ""
