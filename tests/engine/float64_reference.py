"""An independent forward pass in float64 with per-head loops, for GPT-2 and the LLaMA path
(RoPE on adjacent pairs, RMSNorm, grouped-query heads), whose arrays an `edit` may change at
the points hooks and interventions work on: what the engine's hooks are checked against.

`edit(point, layer, array)` returns the array to continue with (or None: unchanged), at
"hook_resid_pre" [n_seq, n_embd], "attn.hook_z" [n_seq, n_head, head_dim],
"hook_attn_out" [n_seq, n_embd] (biases included) and "hook_mlp_out" [n_seq, n_embd].
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gpt_tui.engine.layers import rope_tables

Edit = Callable[[str, int, np.ndarray], "np.ndarray | None"]


def _edited(edit: Edit | None, point: str, layer: int, x: np.ndarray) -> np.ndarray:
    out = None if edit is None else edit(point, layer, x.copy())
    return x if out is None else np.asarray(out, dtype=np.float64)


def layer_norm64(x, g, b, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return g * (x - mean) / np.sqrt(var + eps) + b


def rms_norm64(x, g, eps):
    return g * x / np.sqrt((x**2).mean(-1, keepdims=True) + eps)


def causal_softmax64(scores):
    n = scores.shape[-1]
    scores = np.where(np.tril(np.ones((n, n), bool)), scores, -np.inf)
    e = np.exp(scores - scores.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def rope_adjacent64(x, positions, base):
    """Rotate adjacent pairs (x[2i], x[2i+1]) of x [n_seq, head_dim], the textbook way."""
    cos, sin = rope_tables(positions, x.shape[-1], base)
    even, odd = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out


def gpt2_logits(params: dict, n_head: int, ids, edit: Edit | None = None) -> np.ndarray:
    """Logits [n_seq, n_vocab] of plain (checkpoint-layout) GPT-2 params."""
    p = params
    ids = np.asarray(ids)
    x = p["wte"][ids].astype(np.float64) + p["wpe"][: len(ids)]  # [n_seq, n_embd]
    n_embd = x.shape[1]
    hd = n_embd // n_head
    for layer, block in enumerate(p["blocks"]):
        x = _edited(edit, "hook_resid_pre", layer, x)
        a = block["attn"]
        h = layer_norm64(x, block["ln_1"]["g"], block["ln_1"]["b"])
        q, k, v = np.split(h @ a["c_attn"]["w"] + a["c_attn"]["b"], 3, axis=1)
        z = np.stack([causal_softmax64(q[:, s] @ k[:, s].T / np.sqrt(hd)) @ v[:, s]
                      for s in (slice(i * hd, (i + 1) * hd) for i in range(n_head))],
                     axis=1)  # [n_seq, n_head, hd]  # fmt: skip
        z = _edited(edit, "attn.hook_z", layer, z)
        attn = z.reshape(len(ids), n_embd) @ a["c_proj"]["w"] + a["c_proj"]["b"]
        x = x + _edited(edit, "hook_attn_out", layer, attn)
        m = block["mlp"]
        h = (
            layer_norm64(x, block["ln_2"]["g"], block["ln_2"]["b"]) @ m["c_fc"]["w"]
            + m["c_fc"]["b"]
        )
        h = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h**3)))
        x = x + _edited(edit, "hook_mlp_out", layer, h @ m["c_proj"]["w"] + m["c_proj"]["b"])
    return layer_norm64(x, p["ln_f"]["g"], p["ln_f"]["b"]) @ p["wte"].T.astype(np.float64)


def llama_logits(params: dict, hp: dict, ids, edit: Edit | None = None) -> np.ndarray:
    """Logits [n_seq, n_vocab] of LLaMA params in GGUF's layout (tied output)."""
    n_head, n_kv, hd, eps = hp["n_head"], hp["n_kv_head"], hp["head_dim"], hp["norm_eps"]
    ids = np.asarray(ids)
    positions = np.arange(len(ids))
    x = params["output"].T[ids].astype(np.float64)  # [n_seq, n_embd]
    for layer, block in enumerate(params["blocks"]):
        x = _edited(edit, "hook_resid_pre", layer, x)
        qkv = rms_norm64(x, block["attn_norm"], eps) @ block["attn_qkv"]
        q = qkv[:, : n_head * hd]
        k = qkv[:, n_head * hd : (n_head + n_kv) * hd]
        v = qkv[:, (n_head + n_kv) * hd :]
        heads = []
        for head in range(n_head):
            kv = head // (n_head // n_kv)  # the kv head this query head shares
            qh = rope_adjacent64(q[:, head * hd : (head + 1) * hd], positions, hp["rope_base"])
            kh = rope_adjacent64(k[:, kv * hd : (kv + 1) * hd], positions, hp["rope_base"])
            heads.append(causal_softmax64(qh @ kh.T / np.sqrt(hd)) @ v[:, kv * hd : (kv + 1) * hd])
        z = _edited(edit, "attn.hook_z", layer, np.stack(heads, axis=1))  # [n_seq, n_head, hd]
        x = x + _edited(
            edit, "hook_attn_out", layer, z.reshape(len(ids), -1) @ block["attn_output"]
        )
        gate, up = np.split(rms_norm64(x, block["ffn_norm"], eps) @ block["ffn_gate_up"], 2, axis=1)
        x = x + _edited(
            edit, "hook_mlp_out", layer, (gate / (1 + np.exp(-gate)) * up) @ block["ffn_down"]
        )
    return rms_norm64(x, params["output_norm"], eps) @ params["output"].astype(np.float64)


def reference_logits(arch: str, params: dict, hparams: dict, ids, edit: Edit | None = None):
    if arch == "gpt2":
        return gpt2_logits(params, hparams["n_head"], ids, edit)
    return llama_logits(params, hparams, ids, edit)
