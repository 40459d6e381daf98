"""The LLaMA family's forward pass in NumPy (SmolLM2): RMSNorm, rotary positions, grouped-query
attention, a SwiGLU MLP; the same kv cache and `forward(ids, cache)` contract as GPT-2.

Parameter names are GGUF's (`token_embd`, `attn_norm`, `ffn_down`, ...), with two fusions made
at conversion time so that each decode step streams every weight exactly once in few calls:
`attn_qkv` is q, k and v side by side, `ffn_gate_up` is gate and up side by side. Every matrix
is [n_in, n_out] (as GPT-2's), so a projection is `x @ w`, held in the layout this machine's
kernel plan chose (column blocks or the transpose's rows: engine/layout.py).

Rotary embeddings rotate adjacent pairs (x[2i], x[2i+1]): llama.cpp's "normal" rope. GGUF files
store q/k rows permuted for exactly that pairing (the conversion from Hugging Face's layout,
whose `rotate_half` pairs x[i] with x[i + head_dim/2], does the permuting), so the weights are
used as they come. A pair read as one complex number makes the rotation a single multiply.

The output projection is tied to the token embedding in SmolLM2. Only its transposed copy,
`output` [n_embd, n_vocab], is kept; the input embedding of a token is then a column of it.
A model with its own input embedding (`tie_word_embeddings` false) also has `token_embd`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpt_tui.engine.attention import attend
from gpt_tui.engine.forward_pass import ForwardPass
from gpt_tui.engine.hooks import BlockHooks, Hooks
from gpt_tui.engine.kv_cache import KVCache
from gpt_tui.engine.layers import rms_norm, rope_inverse_frequencies, rope_tables
from gpt_tui.engine.params import (
    as_float32,
    blocked_in_place,
    check_shapes,
    flatten_params,
    plain_matrices,
    unflatten_params,
)
from gpt_tui.engine.plan import Plan, prepare

HPARAM_NAMES = ("n_vocab", "n_ctx", "n_embd", "n_head", "n_kv_head", "head_dim", "n_ff", "n_layer")
"""The integer hyper-parameters; `rope_base`, `norm_eps` (floats) and `tie_word_embeddings`
(bool) complete a llama hparams dict. Optional: `rope_scaling` (Hugging Face's dict, e.g.
{"rope_type": "llama3", "factor": 8.0, ...}; see `layers.rope_inverse_frequencies`) and
`qkv_bias` (Qwen2: q, k and v have biases, held fused as `attn_qkv_b`)."""


def expected_shapes(hparams: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every parameter's shape, by its flat dotted name, as the hyper-parameters imply."""
    n_vocab, n_embd, n_ff = hparams["n_vocab"], hparams["n_embd"], hparams["n_ff"]
    n_head, n_kv_head, head_dim = hparams["n_head"], hparams["n_kv_head"], hparams["head_dim"]
    n_qkv = (n_head + 2 * n_kv_head) * head_dim
    shapes: dict[str, tuple[int, ...]] = {}
    if not hparams.get("tie_word_embeddings", True):
        shapes["token_embd"] = (n_vocab, n_embd)
    for i in range(hparams["n_layer"]):
        block = {
            "attn_norm": (n_embd,),
            "attn_qkv": (n_embd, n_qkv),
            **({"attn_qkv_b": (n_qkv,)} if hparams.get("qkv_bias") else {}),
            "attn_output": (n_head * head_dim, n_embd),
            "ffn_norm": (n_embd,),
            "ffn_gate_up": (n_embd, 2 * n_ff),
            "ffn_down": (n_ff, n_embd),
        }
        shapes.update({f"blocks.{i}.{name}": shape for name, shape in block.items()})
    shapes.update({"output_norm": (n_embd,), "output": (n_embd, n_vocab)})
    return shapes


def streaming_params(params: dict[str, Any]) -> dict[str, Any]:
    """Params -> the layout the converter writes (already converted ones are kept): every
    matrix a `BlockedMatrix`; `token_embd`, only ever gathered from, stays as it is. A model
    rearranges them further if its plan says so (engine/layout.py)."""
    flat = flatten_params(params)
    del params  # a converter passes its only reference: each plain matrix is freed once copied
    blocked_in_place(flat, plain_matrices(flat, "blocks.") + plain_matrices(flat, "output"))
    return unflatten_params(flat)


def rope_rotations(
    positions: np.ndarray, head_dim: int, base: float, scaling: dict[str, Any] | None = None
) -> np.ndarray:
    """e^(i * position * base^(-2j/head_dim)) as complex64 [n_seq, head_dim/2]: multiplying an
    adjacent pair (x[2j] + i x[2j+1]) by it is the rotation llama.cpp's "normal" rope applies.
    `scaling` stretches the frequencies for a long context (`layers.rope_inverse_frequencies`)."""
    cos, sin = rope_tables(positions, head_dim, base, scaling)  # [n_seq, head_dim/2] each
    rotations = np.empty(cos.shape, dtype=np.complex64)  # [n_seq, head_dim/2]
    rotations.real, rotations.imag = cos, sin
    return rotations


def attention(
    qkv: np.ndarray,
    rotations: np.ndarray,
    cache: KVCache,
    layer: int,
    n_batch: int,
    n_head: int,
    n_kv_head: int,
    hook: BlockHooks | None = None,
) -> np.ndarray:
    """Causal grouped-query attention: each kv head serves n_head/n_kv_head query heads.

    Query head h reads kv head h // group (llama.cpp's and Hugging Face's grouping), so the
    queries of one kv head are contiguous and become one [group*n_seq, head_dim] matrix.
    """
    n_tok, n_qkv = qkv.shape
    n_seq, group = n_tok // n_batch, n_head // n_kv_head
    head_dim = n_qkv // (n_head + 2 * n_kv_head)
    n_q, n_qk = n_head * head_dim, (n_head + n_kv_head) * head_dim
    if hook:  # q, k and v before the rotation, as views of qkv [n_batch, n_seq, heads, hd]
        by_stream = qkv.reshape(n_batch, n_seq, n_qkv)  # [n_batch, n_seq, n_qkv]
        hook.qkv(by_stream[..., :n_q].reshape(n_batch, n_seq, n_head, head_dim),
                 by_stream[..., n_q:n_qk].reshape(n_batch, n_seq, n_kv_head, head_dim),
                 by_stream[..., n_qk:].reshape(n_batch, n_seq, n_kv_head, head_dim))  # fmt: skip
    # q and k are rotated together: one complex multiply over their adjacent pairs.
    qk = qkv[:, :n_qk].view(np.complex64)  # [n_tok, (n_head+n_kv_head)*head_dim/2]
    qk = qk.reshape(n_batch, n_seq, n_head + n_kv_head, head_dim // 2)  # [.., n_seq, heads, hd/2]
    qk = (qk * rotations[:, None, :]).view(np.float32)  # [n_batch, n_seq, heads, head_dim]
    q = qk[:, :, :n_head]  # [n_batch, n_seq, n_head, head_dim]
    k = qk[:, :, n_head:].transpose(0, 2, 1, 3)  # [n_batch, n_kv_head, n_seq, head_dim]
    v = qkv[:, n_qk:].reshape(n_batch, n_seq, n_kv_head, head_dim)  # [.., n_seq, n_kv, hd]
    keys, values = cache.store(layer, k, v.transpose(0, 2, 1, 3))  # [n_b, n_kv, n_key, hd] each

    # Each kv head's query rows position-major (row s*group + g), the layout `attend` tiles.
    q = q.reshape(n_batch, n_seq, n_kv_head, group, head_dim)  # [n_b, n_seq, n_kv, group, hd]
    q = q.transpose(0, 2, 1, 3, 4)  # [n_batch, n_kv_head, n_seq, group, head_dim]
    q = q.reshape(n_batch, n_kv_head, n_seq * group, head_dim)  # [n_b, n_kv, n_seq*group, hd]
    q *= np.float32(1.0 / np.sqrt(head_dim))  # [n_batch, n_kv_head, n_seq*group, head_dim]
    attending = hook.attend if hook else attend  # (the hooked one runs hook_pattern)
    out = attending(q, keys, values, n_seq, group)  # [n_b, n_kv_head, n_seq*group, head_dim]
    out = out.reshape(n_batch, n_kv_head, n_seq, group, head_dim)  # [n_b, n_kv, n_seq, g, hd]
    z = out.transpose(0, 2, 1, 3, 4).reshape(n_batch, n_seq, n_head, head_dim)  # [.., n_head, hd]
    if hook:
        hook("attn.hook_z", z)
    return z.reshape(n_tok, n_head * head_dim)  # [n_tok, n_head*head_dim]


def swiglu(x: np.ndarray, ffn_gate_up: np.ndarray, ffn_down: np.ndarray) -> np.ndarray:
    """down(silu(gate(x)) * up(x)), with silu(g) = g / (1 + e^-g) computed in place."""
    n_ff = ffn_down.shape[0]
    gate_up = x @ ffn_gate_up  # [n_tok, 2*n_ff]
    gate, up = gate_up[:, :n_ff], gate_up[:, n_ff:]  # [n_tok, n_ff] each
    h = np.negative(gate)  # [n_tok, n_ff]
    np.exp(h, out=h)  # [n_tok, n_ff]  (inf for gate < -88: then silu is -0, as it should be)
    h += np.float32(1.0)  # [n_tok, n_ff]
    np.divide(gate, h, out=h)  # [n_tok, n_ff]  silu(gate)
    h *= up  # [n_tok, n_ff]
    return h @ ffn_down  # [n_tok, n_embd]


def transformer_block(
    x: np.ndarray,
    block: dict[str, np.ndarray],
    rotations: np.ndarray,
    cache: KVCache,
    layer: int,
    n_batch: int,
    hparams: dict[str, Any],
    hook: BlockHooks | None = None,
) -> np.ndarray:
    """Pre-norm residual block: x + attention(norm(x)), then x + swiglu(norm(x)); `hook` runs
    the block's hook points (engine/hooks.py), each on a view [n_batch, n_seq, ...]."""
    eps = hparams["norm_eps"]
    n_tok, n_embd = x.shape
    by_stream = (n_batch, n_tok // n_batch, n_embd)  # the hooks' shape of x: a view
    if hook:
        hook("hook_resid_pre", x.reshape(by_stream))
    qkv = rms_norm(x, block["attn_norm"], eps) @ block["attn_qkv"]  # [n_tok, n_qkv]
    if "attn_qkv_b" in block:  # Qwen2
        qkv += block["attn_qkv_b"]  # [n_tok, n_qkv]
    z = attention(qkv, rotations, cache, layer, n_batch, hparams["n_head"],
                  hparams["n_kv_head"], hook)  # [n_tok, n_head*head_dim]  # fmt: skip
    attn = z @ block["attn_output"]  # [n_tok, n_embd]
    if hook:
        hook("hook_attn_out", attn.reshape(by_stream))
    x = x + attn  # [n_tok, n_embd]
    if hook:
        hook("hook_resid_mid", x.reshape(by_stream))
    h = rms_norm(x, block["ffn_norm"], eps)  # [n_tok, n_embd]
    mlp = swiglu(h, block["ffn_gate_up"], block["ffn_down"])  # [n_tok, n_embd]
    if hook:
        hook("hook_mlp_out", mlp.reshape(by_stream))
    x += mlp  # [n_tok, n_embd]
    if hook:
        hook("hook_resid_post", x.reshape(by_stream))
    return x


class Llama(ForwardPass):
    """Llama(params, hparams): params in the layout `expected_shapes` describes, float32."""

    architecture = "llama"
    hook_points = ("hook_embed", "ln_final.hook_scale")  # outside the blocks (engine/hooks.py)

    def __init__(
        self, params: dict[str, Any], hparams: dict[str, Any], plan: Plan | str | None = None
    ) -> None:
        missing = [n for n in (*HPARAM_NAMES, "rope_base", "norm_eps") if n not in hparams]
        if missing:
            raise ValueError(f"llama hparams lack {', '.join(missing)}")
        self.hparams: dict[str, Any] = {name: int(hparams[name]) for name in HPARAM_NAMES}
        self.hparams["rope_base"] = float(hparams["rope_base"])
        self.hparams["norm_eps"] = float(hparams["norm_eps"])
        self.hparams["tie_word_embeddings"] = bool(hparams.get("tie_word_embeddings", True))
        self.hparams["qkv_bias"] = bool(hparams.get("qkv_bias", False))
        self.hparams["rope_scaling"] = hparams.get("rope_scaling")
        # An unknown or incomplete scaling fails here, not at the first token.
        rope_inverse_frequencies(self.hparams["head_dim"], 1e4, self.hparams["rope_scaling"])
        self.n_vocab, self.n_ctx, self.n_embd, self.n_head, self.n_kv_head, self.head_dim = (
            self.hparams[name] for name in HPARAM_NAMES[:6]
        )
        self.n_layer = self.hparams["n_layer"]
        if self.n_head % self.n_kv_head:
            raise ValueError(
                f"n_head {self.n_head} is not a multiple of n_kv_head {self.n_kv_head}"
            )
        if self.head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head_dim, not {self.head_dim}")
        self.params = streaming_params(as_float32(params))
        check_shapes(self.params, expected_shapes(self.hparams))
        # How this machine computes the products fastest (measured once, kept), and the weights
        # rearranged in place into the layout it chose: the one place (engine/plan/__init__.py).
        self.planned = prepare(self, plan)

    def readout(self) -> tuple[np.ndarray, np.ndarray | None, float, Any]:
        """How a residual becomes logits: the final norm's gain, bias (None: RMSNorm has
        none) and eps, and the unembedding [n_embd, n_vocab] (look inside decodes with it)."""
        return self.params["output_norm"], None, self.hparams["norm_eps"], self.params["output"]

    def attention_output(self, layer: int) -> tuple[Any, np.ndarray | None]:
        """Block `layer`'s output projection [n_head*head_dim, n_embd], and its bias (none)."""
        return self.params["blocks"][layer]["attn_output"], None

    def new_cache(self, n_batch: int = 1, n_ctx: int | None = None) -> KVCache:
        return KVCache(self.n_layer, self.n_kv_head, self.head_dim, n_ctx or self.n_ctx, n_batch)

    def _hidden(self, ids: np.ndarray, cache: KVCache, hooks: Hooks | None) -> np.ndarray:
        """Final hidden states [n_batch, n_seq, n_embd] of ids [n_batch, n_seq] after the cached
        prefix; stores their keys and values and commits them to the cache."""
        n_batch, n_seq = ids.shape
        x = self.embed(ids.reshape(-1))  # [n_tok, n_embd]
        if hooks is not None:
            hooks("hook_embed", x.reshape(n_batch, n_seq, self.n_embd))
        x = self._blocks(x, n_batch, cache, hooks)  # [n_tok, n_embd]
        cache.commit(ids)
        return x.reshape(n_batch, n_seq, self.n_embd)  # [n_batch, n_seq, n_embd]

    def _blocks(
        self, x: np.ndarray, n_batch: int, cache: KVCache, hooks: Hooks | None, first: int = 0
    ) -> np.ndarray:
        """x [n_tok, n_embd] (positions after the cached ones) through the blocks from `first`."""
        hp = self.hparams
        n_seq = x.shape[0] // n_batch
        positions = np.arange(cache.length, cache.length + n_seq)  # [n_seq]
        rotations = rope_rotations(positions, self.head_dim, hp["rope_base"],
                                   hp["rope_scaling"])  # [n_seq, hd/2]  # fmt: skip
        # exp(-gate) overflows to inf for very negative gates; silu is then exactly -0.
        with np.errstate(over="ignore"):
            for i in range(first, self.n_layer):
                hook = hooks.block(i) if hooks is not None else None
                x = transformer_block(x, self.params["blocks"][i], rotations, cache, i, n_batch,
                                      hp, hook)  # [n_tok, n_embd]  # fmt: skip
        return x

    def embed(self, ids: np.ndarray) -> np.ndarray:
        """Input embeddings [n_tok, n_embd] of ids [n_tok]: rows of `token_embd`, or, when tied,
        columns of `output` (a gather, instead of a second copy of the largest matrix)."""
        if "token_embd" in self.params:
            return self.params["token_embd"][ids]  # [n_tok, n_embd]
        return self.params["output"].columns(ids)  # [n_tok, n_embd]

    def _unembedded(self, x: np.ndarray, hooks: Hooks | None) -> np.ndarray:
        """Logits [n_batch, n_seq, n_vocab] of final hidden states x [n_batch, n_seq, n_embd]."""
        n_batch, n_seq = x.shape[:2]
        scale_hook = hooks.final_scale(n_batch, n_seq) if hooks is not None else None
        x = rms_norm(x.reshape(n_batch * n_seq, self.n_embd), self.params["output_norm"],
                     self.hparams["norm_eps"], scale_hook)  # [n_tok, n_embd]  # fmt: skip
        logits = x @ self.params["output"]  # [n_tok, n_vocab]
        return logits.reshape(n_batch, n_seq, self.n_vocab)  # [n_batch, n_seq, n_vocab]
