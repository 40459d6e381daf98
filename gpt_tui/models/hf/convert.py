"""A Hugging Face checkpoint -> the converted-model directory (`model_dir`) the engine loads.

Weights are read one shard at a time and widened to float32 at once (float16 and bfloat16
exactly), so the peak is the float32 weights plus one mapped shard; the engine's blocked layout
is then built matrix by matrix, each plain copy freed as its blocks are written
(`streaming_params`). The directory appears only whole (`write_model_dir` renames it into place),
so an interrupted or refused conversion leaves nothing behind.

Two layout facts:

- GPT-2's `Conv1D` weights are already [n_in, n_out], as in OpenAI's checkpoint, so they are
  used as stored (transformers' names are OpenAI's, with `weight`/`bias` for `w`/`b`, `g`/`b`).
- LLaMA's `nn.Linear` weights are [n_out, n_in]: transposed. Hugging Face's rotary embedding
  rotates x[i] with x[i + head_dim/2] (`rotate_half`); the engine rotates adjacent pairs, so the
  rows of q and k (and their biases) are permuted within each head to make partners adjacent,
  as llama.cpp's converter does. Attention scores are unchanged: q and k move together.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gpt_tui.engine import gpt2, llama
from gpt_tui.engine.params import Params
from gpt_tui.errors import ModelFileError
from gpt_tui.models.hf.checkpoint import TOKENIZER_FILES, HFCheckpoint, hparams_of
from gpt_tui.models.hf.safetensors import read_float32, read_header
from gpt_tui.models.model_dir import write_model_dir

TOKENIZER_CONFIG = "tokenizer_config.json"


def convert_checkpoint(
    checkpoint: HFCheckpoint,
    target: Path,
    *,
    label: str | None = None,
    extra_files: dict[str, Path | bytes] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Convert `checkpoint` into a model directory at `target` (atomically). `progress(done,
    total)` follows the tensors read; it may raise to cancel (nothing is written then)."""
    label = label or str(checkpoint.path)
    hparams = hparams_of(checkpoint, label)
    expected = hf_shapes(hparams, checkpoint.hf_architecture)
    if hparams["architecture"] == "gpt2":
        build, streaming_params = _gpt2_params, gpt2.streaming_params
    else:
        build, streaming_params = _llama_params, llama.streaming_params
    # One expression, so that no name here holds the plain arrays: `build` pops each tensor it
    # uses, and `streaming_params` frees each plain matrix as soon as its blocks are written.
    # Peak: the float32 weights, plus one shard while it is read, plus one matrix.
    params = streaming_params(build(_read_tensors(checkpoint, expected, label, progress), hparams))
    files: dict[str, Path | bytes] = {
        name: checkpoint.path / name
        for name in TOKENIZER_FILES
        if (checkpoint.path / name).is_file()
    }
    # Its presence says "a `tokenizers` tokenizer" to the loader (GGUF-derived ones have none).
    files.setdefault(TOKENIZER_CONFIG, b"{}\n")
    files.update(extra_files or {})
    return write_model_dir(target, params, hparams, extra_files=files)


def hf_shapes(hparams: dict[str, Any], hf_architecture: str) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape by its Hugging Face name, as config.json implies; tensors not
    listed (attention-mask buffers, rotary caches, a tied lm_head) are not read."""
    n_vocab, n_embd, n_layer = hparams["n_vocab"], hparams["n_embd"], hparams["n_layer"]
    shapes: dict[str, tuple[int, ...]] = {}
    if hparams["architecture"] == "gpt2":
        shapes |= {"wte.weight": (n_vocab, n_embd), "wpe.weight": (hparams["n_ctx"], n_embd)}
        for i in range(n_layer):
            shapes |= {
                f"h.{i}.{name}": shape
                for name, shape in {
                    "ln_1.weight": (n_embd,), "ln_1.bias": (n_embd,),
                    "attn.c_attn.weight": (n_embd, 3 * n_embd), "attn.c_attn.bias": (3 * n_embd,),
                    "attn.c_proj.weight": (n_embd, n_embd), "attn.c_proj.bias": (n_embd,),
                    "ln_2.weight": (n_embd,), "ln_2.bias": (n_embd,),
                    "mlp.c_fc.weight": (n_embd, 4 * n_embd), "mlp.c_fc.bias": (4 * n_embd,),
                    "mlp.c_proj.weight": (4 * n_embd, n_embd), "mlp.c_proj.bias": (n_embd,),
                }.items()
            }  # fmt: skip
        return shapes | {"ln_f.weight": (n_embd,), "ln_f.bias": (n_embd,)}
    n_q = hparams["n_head"] * hparams["head_dim"]
    n_kv = hparams["n_kv_head"] * hparams["head_dim"]
    n_ff = hparams["n_ff"]
    shapes["model.embed_tokens.weight"] = (n_vocab, n_embd)
    for i in range(n_layer):
        layer = {
            "input_layernorm.weight": (n_embd,),
            "self_attn.q_proj.weight": (n_q, n_embd),
            "self_attn.k_proj.weight": (n_kv, n_embd),
            "self_attn.v_proj.weight": (n_kv, n_embd),
            "self_attn.o_proj.weight": (n_embd, n_q),
            "post_attention_layernorm.weight": (n_embd,),
            "mlp.gate_proj.weight": (n_ff, n_embd),
            "mlp.up_proj.weight": (n_ff, n_embd),
            "mlp.down_proj.weight": (n_embd, n_ff),
        }
        if hparams.get("qkv_bias"):
            layer |= {"self_attn.q_proj.bias": (n_q,), "self_attn.k_proj.bias": (n_kv,),
                      "self_attn.v_proj.bias": (n_kv,)}  # fmt: skip
        shapes |= {f"model.layers.{i}.{name}": shape for name, shape in layer.items()}
    shapes["model.norm.weight"] = (n_embd,)
    if not hparams["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (n_vocab, n_embd)
    return shapes


def _canonical(name: str) -> str:
    """GPT-2 checkpoints name their tensors with or without the `transformer.` prefix (older
    uploads lack it); LLaMA ones always say `model.`."""
    return name.removeprefix("transformer.")


def _read_tensors(
    checkpoint: HFCheckpoint,
    expected: dict[str, tuple[int, ...]],
    label: str,
    progress: Callable[[int, int], None] | None,
) -> dict[str, np.ndarray]:
    # Shapes and presence are checked from the headers first: a mismatch costs no reading.
    where: dict[str, Path] = {}
    for file in checkpoint.weights:
        for info in read_header(file):
            name = _canonical(info.name)
            if name not in expected:
                continue
            if info.shape != expected[name]:
                raise ModelFileError(
                    f"{label}: {file.name} holds {info.name} as {list(info.shape)}, but "
                    f"config.json implies {list(expected[name])}; the config and the weights "
                    "disagree (a mixed-up download?): fetch the model again"
                )
            where[name] = file
    missing = [name for name in expected if name not in where]
    if missing:
        raise ModelFileError(
            f"{label} lacks the tensor {missing[0]} ({len(missing)} missing) that config.json "
            "implies; fetch the model again"
        )
    tensors: dict[str, np.ndarray] = {}
    for file in checkpoint.weights:
        for raw_name, array in read_float32(file):
            name = _canonical(raw_name)
            if where.get(name) == file:
                tensors[name] = array
                if progress is not None:
                    progress(len(tensors), len(expected))
    return tensors


def _gpt2_params(t: dict[str, np.ndarray], hparams: dict[str, Any]) -> Params:
    def norm(prefix: str) -> dict[str, np.ndarray]:
        return {"g": t.pop(f"{prefix}.weight"), "b": t.pop(f"{prefix}.bias")}

    def dense(prefix: str) -> dict[str, np.ndarray]:
        return {"w": t.pop(f"{prefix}.weight"), "b": t.pop(f"{prefix}.bias")}

    blocks = [
        {
            "ln_1": norm(f"h.{i}.ln_1"),
            "attn": {"c_attn": dense(f"h.{i}.attn.c_attn"), "c_proj": dense(f"h.{i}.attn.c_proj")},
            "ln_2": norm(f"h.{i}.ln_2"),
            "mlp": {"c_fc": dense(f"h.{i}.mlp.c_fc"), "c_proj": dense(f"h.{i}.mlp.c_proj")},
        }
        for i in range(hparams["n_layer"])
    ]
    return {"wte": t.pop("wte.weight"), "wpe": t.pop("wpe.weight"), "blocks": blocks,
            "ln_f": norm("ln_f")}  # fmt: skip


def rope_pairs(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Rows [n_heads*head_dim, ...] in rotate-half order -> adjacent-pair order, per head:
    new row 2j is old row j, new row 2j+1 old row j + head_dim/2."""
    head_dim = w.shape[0] // n_heads
    split = w.reshape(n_heads, 2, head_dim // 2, *w.shape[1:])  # [n_heads, 2, hd/2, ...]
    return split.swapaxes(1, 2).reshape(w.shape)  # [n_heads*head_dim, ...]


def _llama_params(t: dict[str, np.ndarray], hparams: dict[str, Any]) -> Params:
    """Matrices as transposed views ([n_in, n_out] over the [n_out, n_in] arrays): blocking
    copies them into the engine's layout once, with no contiguous transpose in between."""
    n_head, n_kv_head = hparams["n_head"], hparams["n_kv_head"]

    def fused_t(*parts: np.ndarray) -> np.ndarray:
        # [n_out_a, n_in], [n_out_b, n_in], ... -> [n_in, n_out_a + n_out_b + ...]
        return np.concatenate(parts, axis=0).T

    blocks = []
    for i in range(hparams["n_layer"]):
        p = f"model.layers.{i}."
        q = rope_pairs(t.pop(p + "self_attn.q_proj.weight"), n_head)  # [n_head*hd, n_embd]
        k = rope_pairs(t.pop(p + "self_attn.k_proj.weight"), n_kv_head)  # [n_kv*hd, n_embd]
        block = {
            "attn_norm": t.pop(p + "input_layernorm.weight"),
            "attn_qkv": fused_t(q, k, t.pop(p + "self_attn.v_proj.weight")),
            "attn_output": t.pop(p + "self_attn.o_proj.weight").T,
            "ffn_norm": t.pop(p + "post_attention_layernorm.weight"),
            "ffn_gate_up": fused_t(t.pop(p + "mlp.gate_proj.weight"),
                                   t.pop(p + "mlp.up_proj.weight")),
            "ffn_down": t.pop(p + "mlp.down_proj.weight").T,
        }  # fmt: skip
        del q, k
        if hparams.get("qkv_bias"):
            block["attn_qkv_b"] = np.concatenate(
                [
                    rope_pairs(t.pop(p + "self_attn.q_proj.bias"), n_head),
                    rope_pairs(t.pop(p + "self_attn.k_proj.bias"), n_kv_head),
                    t.pop(p + "self_attn.v_proj.bias"),
                ]
            )
        blocks.append(block)
    embedding = t.pop("model.embed_tokens.weight")  # [n_vocab, n_embd]
    params: Params = {"blocks": blocks, "output_norm": t.pop("model.norm.weight")}
    if hparams["tie_word_embeddings"]:
        params["output"] = embedding.T  # [n_embd, n_vocab]; only the blocked copy is kept
    else:
        params["token_embd"] = embedding
        params["output"] = t.pop("lm_head.weight").T  # [n_embd, n_vocab]
    return params
