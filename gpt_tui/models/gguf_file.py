"""GGUF -> the LLaMA engine's params, hyper-parameters and tokenizer (with its chat template).

GGUF is llama.cpp's single-file format: a header of typed key/value metadata (hyper-parameters,
the vocabulary, merges, the chat template), then tensors, most of them quantized in blocks. The
`gguf` package (llama.cpp's own Python reader) parses it and dequantizes every block format it
knows (Q4_1, Q8_0, F16, BF16, K-quants, ...) to float32; we convert once and cache the result in
the converted-model format, so later starts skip all of this.

Two layout facts the conversion relies on:

- A GGUF tensor's shape lists the fastest-varying dimension first, so a matrix GGUF describes as
  [n_in, n_out] arrives from the reader as a NumPy array [n_out, n_in] (PyTorch's `nn.Linear`
  layout). The engine wants [n_in, n_out], hence the transposes below.
- llama.cpp's converter permuted the rows of each attention head's q and k weights so that
  rotary embeddings rotate adjacent pairs; the engine's rope does exactly that, so q and k are
  used as stored, never un-permuted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gpt_tui.engine.llama import expected_shapes, streaming_params
from gpt_tui.engine.params import Params, flatten_params
from gpt_tui.errors import ModelFileError
from gpt_tui.models.gguf_header import read_header
from gpt_tui.models.model_dir import write_model_dir
from gpt_tui.tokenizer import GPT2_PATTERN, Tokenizer

TOKENIZER_FILE = "tokenizer.json"

#: llama.cpp's pre-tokenizer names (`tokenizer.ggml.pre`) -> our regex stack. "smollm": every
#: digit alone, then GPT-2's pattern (llama.cpp's LLAMA_VOCAB_PRE_TYPE_SMOLLM).
PRE_TOKENIZERS: dict[str, list[str]] = {
    "smollm": [r"\p{N}", GPT2_PATTERN],
    "gpt-2": [GPT2_PATTERN],
}

# Token types in `tokenizer.ggml.token_type` (llama.cpp's llama_token_type).
CONTROL, USER_DEFINED = 3, 4

#: Tokens that end a turn or a document; llama.cpp treats them as end-of-generation as well as
#: the file's own eos/eot ids. SmolLM2's chat turns end with <|im_end|>, documents with
#: <|endoftext|>.
END_OF_GENERATION = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<|end|>")


@dataclass(frozen=True)
class GGUFModel:
    """What a GGUF file holds, converted: engine params, hparams.json content, the tokenizer."""

    params: Params
    hparams: dict[str, Any]
    tokenizer: Tokenizer


def read_gguf(path: str | Path, progress: Callable[[int, int], None] | None = None) -> GGUFModel:
    """Read a LLaMA-architecture GGUF file, dequantizing every tensor to float32.

    `progress(done, total)` is called after each tensor (it may raise to cancel the reading).
    """
    path = Path(path)
    reader = _open(path)
    try:
        fields = {name: field.contents() for name, field in reader.fields.items()}
    except (ValueError, IndexError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path} is damaged or truncated: {exc}") from exc
    architecture = fields.get("general.architecture")
    if architecture != "llama":
        raise ModelFileError(
            f"{path} holds a '{architecture}' model; gpt-tui reads GGUF files of the 'llama'"
            " architecture only"
        )
    tokenizer = _tokenizer(fields, path)
    tensors = _dequantized_tensors(reader, path, progress)
    hparams = _hparams(fields, tensors, tokenizer.n_vocab, path)
    params = llama_params(tensors, hparams, path)
    return GGUFModel(params, hparams, tokenizer)


def convert_gguf(
    path: str | Path,
    target: Path,
    extra_files: dict[str, Path | bytes] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Convert a GGUF file into a converted-model directory at `target` (written atomically)."""
    model = read_gguf(path, progress)
    tokenizer_json = json.dumps(model.tokenizer.to_json(), ensure_ascii=False).encode("utf-8")
    files: dict[str, Path | bytes] = {TOKENIZER_FILE: tokenizer_json, **(extra_files or {})}
    # Stored in the layout the engine reads, so that loading maps the file and copies nothing.
    params = streaming_params(model.params)
    return write_model_dir(target, params, model.hparams, extra_files=files)


def llama_params(
    tensors: dict[str, np.ndarray], hparams: dict[str, Any], where: str | Path = "GGUF"
) -> Params:
    """GGUF's llama tensors (by GGUF name, as the reader gives them: [n_out, n_in]) -> the
    engine's layout: [n_in, n_out] matrices, q|k|v and gate|up fused (see `engine.llama`)."""

    def take(name: str) -> np.ndarray:
        try:
            return tensors[name]
        except KeyError:
            raise ModelFileError(f"{where} lacks the tensor {name}") from None

    def fused(*names: str) -> np.ndarray:
        # [n_out_a + n_out_b + ..., n_in] -> [n_in, n_out_a + n_out_b + ...]
        return np.ascontiguousarray(np.concatenate([take(n) for n in names], axis=0).T)

    blocks = []
    for i in range(hparams["n_layer"]):
        b = f"blk.{i}."
        blocks.append(
            {
                "attn_norm": take(b + "attn_norm.weight"),
                "attn_qkv": fused(b + "attn_q.weight", b + "attn_k.weight", b + "attn_v.weight"),
                "attn_output": np.ascontiguousarray(take(b + "attn_output.weight").T),
                "ffn_norm": take(b + "ffn_norm.weight"),
                "ffn_gate_up": fused(b + "ffn_gate.weight", b + "ffn_up.weight"),
                "ffn_down": np.ascontiguousarray(take(b + "ffn_down.weight").T),
            }
        )
    embedding = take("token_embd.weight")  # [n_vocab, n_embd]
    params: Params = {"blocks": blocks, "output_norm": take("output_norm.weight")}
    if hparams["tie_word_embeddings"]:
        params["output"] = np.ascontiguousarray(embedding.T)  # [n_embd, n_vocab]
    else:
        params["token_embd"] = embedding
        params["output"] = np.ascontiguousarray(take("output.weight").T)  # [n_embd, n_vocab]

    expected = expected_shapes(hparams)
    for name, array in flatten_params(params).items():
        if tuple(array.shape) != expected[name]:
            raise ModelFileError(
                f"{where}: {name} has shape {list(array.shape)}, the metadata implies "
                f"{list(expected[name])}"
            )
    return params


# --- reading -------------------------------------------------------------------------------------


def _open(path: Path) -> Any:
    import gguf  # only conversion needs it; loading a converted model does not

    read_header(path)  # a short file, or one lying about its tensors, is refused here
    try:
        return gguf.GGUFReader(path)
    except (ValueError, IndexError, TypeError, KeyError, OSError) as exc:
        # The reader memory-maps the file and trips over a short one in many different ways.
        raise ModelFileError(f"{path} is damaged or truncated: {exc}") from exc


def _dequantized_tensors(
    reader: Any, path: Path, progress: Callable[[int, int], None] | None
) -> dict[str, np.ndarray]:
    from gguf.quants import dequantize

    tensors: dict[str, np.ndarray] = {}
    total = len(reader.tensors)
    for done, tensor in enumerate(reader.tensors, start=1):
        try:
            # A plain ndarray view: the reader's np.memmap subclass makes every slice that
            # dequantize takes pay for __array_finalize__ (a second of the conversion).
            array = dequantize(tensor.data.view(np.ndarray), tensor.tensor_type)
        except NotImplementedError as exc:
            raise ModelFileError(
                f"{path}: tensor {tensor.name} uses {tensor.tensor_type.name}, which the gguf "
                "package cannot dequantize"
            ) from exc
        except (ValueError, IndexError, TypeError) as exc:
            raise ModelFileError(f"{path}: tensor {tensor.name} is damaged: {exc}") from exc
        shape = tuple(int(n) for n in reversed(tensor.shape))  # GGUF lists dimensions inner first
        if array.size != int(np.prod(shape)):
            raise ModelFileError(f"{path}: tensor {tensor.name} is truncated")
        tensors[tensor.name] = np.asarray(array, dtype=np.float32).reshape(shape)
        if progress is not None:
            progress(done, total)
    return tensors


def _hparams(
    fields: dict[str, Any], tensors: dict[str, np.ndarray], n_vocab: int, path: Path
) -> dict[str, Any]:
    def get(key: str, default: Any = None) -> Any:
        value = fields.get(f"llama.{key}", default)
        if value is None:
            raise ModelFileError(f"{path} lacks the metadata llama.{key}")
        if isinstance(value, list):
            raise ModelFileError(f"{path}: per-layer llama.{key} is not supported")
        return value

    n_embd, n_head = int(get("embedding_length")), int(get("attention.head_count"))
    head_dim = int(get("attention.key_length", n_embd // n_head))
    rope_dim = int(get("rope.dimension_count", head_dim))
    scaling = fields.get("llama.rope.scaling.type", "none")
    if rope_dim != head_dim or scaling not in ("none", "") or "rope_freqs.weight" in tensors:
        raise ModelFileError(
            f"{path} uses a rope variant gpt-tui does not implement (partial, scaled or with "
            "frequency factors)"
        )
    return {
        "architecture": "llama",
        "n_vocab": n_vocab,
        "n_ctx": int(get("context_length")),
        "n_embd": n_embd,
        "n_head": n_head,
        "n_kv_head": int(get("attention.head_count_kv", n_head)),
        "head_dim": head_dim,
        "n_ff": int(get("feed_forward_length")),
        "n_layer": int(get("block_count")),
        "rope_base": _float32(get("rope.freq_base", 10000.0)),
        "norm_eps": _float32(get("attention.layer_norm_rms_epsilon", 1e-5)),
        "tie_word_embeddings": "output.weight" not in tensors,
    }


def _float32(value: Any) -> float:
    """A float32 metadata value as the shortest decimal that reads back the same (1e-05, not
    9.999999747378752e-06), so hparams.json says what the model's authors wrote."""
    return float(str(np.float32(value)))


def _tokenizer(fields: dict[str, Any], path: Path) -> Tokenizer:
    kind = fields.get("tokenizer.ggml.model")
    if kind != "gpt2":
        raise ModelFileError(
            f"{path} has a '{kind}' tokenizer; gpt-tui reads byte-level BPE ('gpt2') only"
        )
    pre = fields.get("tokenizer.ggml.pre", "gpt-2")
    if pre not in PRE_TOKENIZERS:
        raise ModelFileError(
            f"{path} uses the pre-tokenizer '{pre}'; gpt-tui knows {', '.join(PRE_TOKENIZERS)}"
        )
    tokens: list[str] = fields.get("tokenizer.ggml.tokens") or []
    if not tokens:
        raise ModelFileError(f"{path} has no vocabulary (tokenizer.ggml.tokens)")
    types: list[int] = fields.get("tokenizer.ggml.token_type") or [1] * len(tokens)
    # Control tokens (<|im_start|>, ...) are matched in text only where the caller allows it.
    special = {
        token: i
        for i, (token, token_type) in enumerate(zip(tokens, types, strict=False))
        if token_type in (CONTROL, USER_DEFINED)
    }
    merges: list[tuple[str, str]] = []
    for merge in fields.get("tokenizer.ggml.merges") or []:
        left, _, right = merge.partition(" ")  # byte-level tokens never hold a real space ("Ġ")
        merges.append((left, right))

    eos_ids = [
        int(fields[key])
        for key in ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id")
        if key in fields
    ]
    eos_ids += [special[name] for name in END_OF_GENERATION if name in special]
    bos_id = fields.get("tokenizer.ggml.bos_token_id")
    try:
        return Tokenizer(
            tokens,
            merges,
            special,
            PRE_TOKENIZERS[pre],
            eos_ids=tuple(dict.fromkeys(eos_ids)),
            bos_id=None if bos_id is None else int(bos_id),
            chat_template=fields.get("tokenizer.chat_template"),
        )
    except ValueError as exc:
        raise ModelFileError(f"{path}: the tokenizer metadata is inconsistent: {exc}") from exc
