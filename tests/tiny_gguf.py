"""Tiny llama GGUF files written with gguf-py's GGUFWriter, as llama.cpp's converter writes
them, in any quantization gguf-py can dequantize: for tests of GGUF reading and of the stores
of other tools (Ollama, LM Studio, llama.cpp) that hold them."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

from gpt_tui.tokenizer import bytes_to_unicode

Q = gguf.GGMLQuantizationType

SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Every matrix's n_in is a multiple of 32, the Q8_0 block size.
TINY = {"n_embd": 64, "n_head": 4, "n_kv_head": 2, "head_dim": 16, "n_ff": 96, "n_layer": 2,
        "n_ctx": 128, "rope_base": 10000.0, "norm_eps": 1e-5}  # fmt: skip
# Every matrix's n_in is 256, the K-quants' and most IQ types' block size.
WIDE = {"n_embd": 256, "n_head": 4, "n_kv_head": 2, "head_dim": 64, "n_ff": 256, "n_layer": 1,
        "n_ctx": 128, "rope_base": 10000.0, "norm_eps": 1e-5}  # fmt: skip
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he")]


def tiny_vocab() -> list[str]:
    return [*SPECIALS, *bytes_to_unicode(), *(left + right for left, right in MERGES)]


def tiny_tensors(seed: int = 0, untied: bool = False, dims: dict = TINY) -> dict[str, np.ndarray]:
    """Random llama weights under GGUF names, as the reader returns them ([n_out, n_in])."""
    rng = np.random.default_rng(seed)
    n_vocab, n_embd, hd = len(tiny_vocab()), dims["n_embd"], dims["head_dim"]

    def normal(*shape: int, scale: float = 0.3) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    tensors = {"token_embd.weight": normal(n_vocab, n_embd),
               "output_norm.weight": 1 + normal(n_embd, scale=0.1)}  # fmt: skip
    if untied:
        tensors["output.weight"] = normal(n_vocab, n_embd)
    for i in range(dims["n_layer"]):
        tensors.update({
            f"blk.{i}.attn_norm.weight": 1 + normal(n_embd, scale=0.1),
            f"blk.{i}.attn_q.weight": normal(dims["n_head"] * hd, n_embd),
            f"blk.{i}.attn_k.weight": normal(dims["n_kv_head"] * hd, n_embd),
            f"blk.{i}.attn_v.weight": normal(dims["n_kv_head"] * hd, n_embd),
            f"blk.{i}.attn_output.weight": normal(n_embd, dims["n_head"] * hd),
            f"blk.{i}.ffn_norm.weight": 1 + normal(n_embd, scale=0.1),
            f"blk.{i}.ffn_gate.weight": normal(dims["n_ff"], n_embd),
            f"blk.{i}.ffn_up.weight": normal(dims["n_ff"], n_embd),
            f"blk.{i}.ffn_down.weight": normal(n_embd, dims["n_ff"]),
        })  # fmt: skip
    return tensors


def quantized(array: np.ndarray, qtype: Q, seed: int = 0) -> np.ndarray:
    """`array` [n_out, n_in] as `qtype`'s raw blocks: gguf-py's own quantization where it has
    one; else random blocks (for the K-quants and IQ types, which gguf-py only dequantizes),
    every byte below 0x20 so that each float16 scale inside is finite and small."""
    try:
        return gguf.quants.quantize(array, qtype)
    except NotImplementedError:
        block, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
        n_out, n_in = array.shape
        rng = np.random.default_rng(seed)
        return rng.integers(0, 0x20, (n_out, n_in // block * block_bytes), dtype=np.uint8)


def raw_blocks(tensors: dict[str, np.ndarray], qtype: Q) -> dict[str, np.ndarray]:
    """The raw blocks a GGUF of `qtype` holds for `tensors`' matrices (norms stay F32)."""
    if qtype == Q.F32:
        return {}
    return {name: quantized(a, qtype, seed=i)
            for i, (name, a) in enumerate(tensors.items()) if a.ndim == 2}  # fmt: skip


def dequantized(tensors: dict[str, np.ndarray], qtype: Q) -> dict[str, np.ndarray]:
    """What a GGUF written from `tensors` as `qtype` holds, by gguf-py's dequantization."""
    raw = raw_blocks(tensors, qtype)
    return {
        name: gguf.quants.dequantize(raw[name], qtype).reshape(a.shape) if name in raw else a
        for name, a in tensors.items()
    }


def write_tiny_gguf(
    path: Path,
    tensors: dict[str, np.ndarray],
    qtype: Q = Q.F32,
    architecture: str = "llama",
    dims: dict = TINY,
) -> Path:
    """A llama GGUF as llama.cpp's converter writes one: metadata, vocabulary, tensors (2-D
    ones as `qtype`: `raw_blocks`; norms always F32, as in SmolLM2's file)."""
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_context_length(dims["n_ctx"])
    writer.add_embedding_length(dims["n_embd"])
    writer.add_block_count(dims["n_layer"])
    writer.add_feed_forward_length(dims["n_ff"])
    writer.add_head_count(dims["n_head"])
    writer.add_head_count_kv(dims["n_kv_head"])
    writer.add_rope_freq_base(dims["rope_base"])
    writer.add_layer_norm_rms_eps(dims["norm_eps"])
    writer.add_rope_dimension_count(dims["head_dim"])
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    vocab = tiny_vocab()
    writer.add_token_list(vocab)
    writer.add_token_types([3 if t in SPECIALS else 1 for t in vocab])
    writer.add_token_merges([f"{left} {right}" for left, right in MERGES])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_chat_template(SMOLLM2_TEMPLATE)
    raw = raw_blocks(tensors, qtype)
    for name, array in tensors.items():
        if name in raw:
            writer.add_tensor(name, raw[name], raw_dtype=qtype)
        else:
            writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def tiny_hparams(untied: bool = False, dims: dict = TINY) -> dict:
    return {"architecture": "llama", "n_vocab": len(tiny_vocab()), **dims,
            "tie_word_embeddings": not untied}  # fmt: skip
