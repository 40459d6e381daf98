"""GPT-2's forward pass in NumPy: all heads at once, fused qkv, a preallocated kv cache.

Parameter names are those of OpenAI's checkpoint (`wte`, `c_attn`, `ln_1`, ...). Activations of
the non-attention layers are kept 2-D, [n_tok, n_embd] with n_tok = n_batch * n_seq, so each
projection is one matrix product that streams its weights once, however many streams are decoded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpt_tui.engine.attention import attend
from gpt_tui.engine.blocked import BlockedMatrix
from gpt_tui.engine.forward_pass import ForwardPass
from gpt_tui.engine.hooks import MODEL_POINTS, BlockHooks, Hooks
from gpt_tui.engine.kv_cache import KVCache
from gpt_tui.engine.layers import gelu, layer_norm, linear
from gpt_tui.engine.params import (
    as_float32,
    blocked_in_place,
    check_shapes,
    flatten_params,
    plain_matrices,
    unflatten_params,
)
from gpt_tui.engine.plan import Plan, prepare

HPARAM_NAMES = ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer")


def expected_shapes(hparams: dict[str, int]) -> dict[str, tuple[int, ...]]:
    """Every parameter's shape, by its flat dotted name, as the hyper-parameters imply."""
    n_vocab, n_ctx, n_embd = hparams["n_vocab"], hparams["n_ctx"], hparams["n_embd"]
    shapes: dict[str, tuple[int, ...]] = {"wte": (n_vocab, n_embd), "wpe": (n_ctx, n_embd)}
    for i in range(hparams["n_layer"]):
        block = {
            "ln_1.g": (n_embd,), "ln_1.b": (n_embd,),
            "attn.c_attn.w": (n_embd, 3 * n_embd), "attn.c_attn.b": (3 * n_embd,),
            "attn.c_proj.w": (n_embd, n_embd), "attn.c_proj.b": (n_embd,),
            "ln_2.g": (n_embd,), "ln_2.b": (n_embd,),
            "mlp.c_fc.w": (n_embd, 4 * n_embd), "mlp.c_fc.b": (4 * n_embd,),
            "mlp.c_proj.w": (4 * n_embd, n_embd), "mlp.c_proj.b": (n_embd,),
        }  # fmt: skip
        shapes.update({f"blocks.{i}.{name}": shape for name, shape in block.items()})
    shapes.update({"ln_f.g": (n_embd,), "ln_f.b": (n_embd,)})
    return shapes


def streaming_params(params: dict[str, Any]) -> dict[str, Any]:
    """Checkpoint-layout params -> the layout the converter writes (already converted ones are
    kept): every matrix a `BlockedMatrix`, and the token embedding transposed. A model
    rearranges them further if its plan says so (engine/layout.py).

    The output projection streams the whole embedding table every step, so it is held
    [n_embd, n_vocab] like every other projection (x @ wte.T measured 50% slower). Only this
    copy is kept, `wte_t`: a token's input embedding is one of its columns.
    """
    flat = flatten_params(params)
    del params  # a converter passes its only reference: each plain matrix is freed once copied
    if isinstance(flat.get("wte"), np.ndarray):
        flat["wte_t"] = BlockedMatrix.from_matrix(flat.pop("wte").T)  # [n_embd, n_vocab]
    blocked_in_place(flat, plain_matrices(flat, "blocks."))
    return unflatten_params(flat)


def ffn(x: np.ndarray, c_fc: dict, c_proj: dict) -> np.ndarray:
    h = gelu(linear(x, c_fc["w"], c_fc["b"]))  # [n_tok, n_embd] -> [n_tok, 4*n_embd]
    return linear(h, c_proj["w"], c_proj["b"])  # [n_tok, 4*n_embd] -> [n_tok, n_embd]


def mha(
    x: np.ndarray,
    c_attn: dict,
    c_proj: dict,
    n_head: int,
    cache: KVCache,
    layer: int,
    n_batch: int,
    hook: BlockHooks | None = None,
) -> np.ndarray:
    """Causal self-attention over the cached prefix plus the new positions, all heads batched."""
    n_tok, n_embd = x.shape
    n_seq, head_dim = n_tok // n_batch, n_embd // n_head
    qkv = linear(x, c_attn["w"], c_attn["b"])  # [n_tok, 3*n_embd]
    qkv = qkv.reshape(n_batch, n_seq, 3, n_head, head_dim)  # [n_batch, n_seq, 3, n_head, head_dim]
    if hook:  # q, k and v as views of qkv [n_batch, n_seq, n_head, head_dim]
        hook.qkv(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2])
    q, k, v = qkv.transpose(2, 0, 3, 1, 4)  # 3 x [n_batch, n_head, n_seq, head_dim]
    keys, values = cache.store(layer, k, v)  # [n_batch, n_head, n_key, head_dim] each
    q = q * np.float32(1.0 / np.sqrt(head_dim))  # [n_batch, n_head, n_seq, head_dim]
    attending = hook.attend if hook else attend  # (the hooked one runs hook_pattern)
    out = attending(q, keys, values, n_seq, 1)  # [n_batch, n_head, n_seq, head_dim]
    z = out.transpose(0, 2, 1, 3)  # [n_batch, n_seq, n_head, head_dim]
    if hook:
        hook("attn.hook_z", z)
    attn = linear(z.reshape(n_tok, n_embd), c_proj["w"], c_proj["b"])  # [n_tok, n_embd]
    if hook:
        hook("hook_attn_out", attn.reshape(n_batch, n_seq, n_embd))
    return attn


def transformer_block(
    x: np.ndarray,
    block: dict,
    n_head: int,
    cache: KVCache,
    layer: int,
    n_batch: int,
    hook: BlockHooks | None = None,
) -> np.ndarray:
    """x + attention(ln_1(x)), then x + mlp(ln_2(x)); `hook` runs the block's hook points
    (engine/hooks.py), each on a view [n_batch, n_seq, ...] of the array it names."""
    c_attn, c_proj = block["attn"]["c_attn"], block["attn"]["c_proj"]
    n_tok, n_embd = x.shape
    by_stream = (n_batch, n_tok // n_batch, n_embd)  # the hooks' shape of x: a view
    if hook:
        hook("hook_resid_pre", x.reshape(by_stream))
    h = layer_norm(x, **block["ln_1"])  # [n_tok, n_embd]
    x = x + mha(h, c_attn, c_proj, n_head, cache, layer, n_batch, hook)  # [n_tok, n_embd]
    if hook:
        hook("hook_resid_mid", x.reshape(by_stream))
    h = layer_norm(x, **block["ln_2"])  # [n_tok, n_embd]
    mlp = ffn(h, **block["mlp"])  # [n_tok, n_embd]
    if hook:
        hook("hook_mlp_out", mlp.reshape(by_stream))
    x = x + mlp  # [n_tok, n_embd]
    if hook:
        hook("hook_resid_post", x.reshape(by_stream))
    return x


class GPT2(ForwardPass):
    """GPT2(params, hparams): params in OpenAI's checkpoint layout, float32 NumPy arrays."""

    architecture = "gpt2"
    hook_points = MODEL_POINTS  # the hook points outside the blocks (engine/hooks.py)

    def __init__(
        self, params: dict[str, Any], hparams: dict[str, Any], plan: Plan | str | None = None
    ) -> None:
        missing = [name for name in HPARAM_NAMES if name not in hparams]
        if missing:
            raise ValueError(f"GPT-2 hparams lack {', '.join(missing)}")
        self.hparams = {name: int(hparams[name]) for name in HPARAM_NAMES}
        self.n_vocab, self.n_ctx, self.n_embd, self.n_head, self.n_layer = (
            self.hparams[name] for name in HPARAM_NAMES
        )
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        params = streaming_params(as_float32(params))
        shapes = expected_shapes(self.hparams)
        shapes["wte_t"] = shapes.pop("wte")[::-1]
        check_shapes(params, shapes)
        self.params = params
        # How this machine computes the products fastest (measured once, kept), and the weights
        # rearranged in place into the layout it chose: the one place (engine/plan/__init__.py).
        self.planned = prepare(self, plan)

    def readout(self) -> tuple[np.ndarray, np.ndarray | None, float, Any]:
        """How a residual becomes logits: the final norm's gain, bias (None for RMSNorm) and
        eps, and the unembedding [n_embd, n_vocab] (look inside decodes every layer so)."""
        return self.params["ln_f"]["g"], self.params["ln_f"]["b"], 1e-5, self.params["wte_t"]

    def attention_output(self, layer: int) -> tuple[Any, np.ndarray | None]:
        """Block `layer`'s output projection [n_head*head_dim, n_embd], and its bias."""
        c_proj = self.params["blocks"][layer]["attn"]["c_proj"]
        return c_proj["w"], c_proj["b"]

    def new_cache(self, n_batch: int = 1, n_ctx: int | None = None) -> KVCache:
        head_dim = self.n_embd // self.n_head
        return KVCache(self.n_layer, self.n_head, head_dim, n_ctx or self.n_ctx, n_batch)

    def _unembedded(self, x: np.ndarray, hooks: Hooks | None) -> np.ndarray:
        """Logits [n_batch, n_seq, n_vocab] of final hidden states x [n_batch, n_seq, n_embd]."""
        n_batch, n_seq = x.shape[:2]
        scale_hook = hooks.final_scale(n_batch, n_seq) if hooks is not None else None
        x = layer_norm(x.reshape(n_batch * n_seq, self.n_embd), **self.params["ln_f"],
                       scale_hook=scale_hook)  # [n_tok, n_embd]  # fmt: skip
        logits = x @ self.params["wte_t"]  # [n_tok, n_vocab]  (the output embedding is tied)
        return logits.reshape(n_batch, n_seq, self.n_vocab)  # [n_batch, n_seq, n_vocab]

    def _hidden(self, ids: np.ndarray, cache: KVCache, hooks: Hooks | None) -> np.ndarray:
        """Final hidden states [n_batch, n_seq, n_embd] (before ln_f) of ids [n_batch, n_seq]
        after the cached prefix; stores their keys and values and commits them to the cache."""
        n_batch, n_seq = ids.shape
        p = self.params
        start = cache.length
        x = p["wte_t"].columns(ids.ravel())  # [n_tok, n_embd]  (token embeddings: columns)
        x = x.reshape(n_batch, n_seq, self.n_embd)  # [n_batch, n_seq, n_embd]
        positions = p["wpe"][start : start + n_seq]  # [n_seq, n_embd]
        if hooks is not None:
            hooks("hook_embed", x)
            if hooks.has("hook_pos_embed"):  # a copy per stream: never the weights themselves
                positions = np.repeat(positions[None], n_batch, axis=0)  # [n_b, n_seq, n_embd]
                hooks("hook_pos_embed", positions)
        x = (x + positions).reshape(n_batch * n_seq, self.n_embd)  # [n_tok, n_embd]
        x = self._blocks(x, n_batch, cache, hooks)  # [n_tok, n_embd]
        cache.commit(ids)
        return x.reshape(n_batch, n_seq, self.n_embd)  # [n_batch, n_seq, n_embd]

    def _blocks(
        self, x: np.ndarray, n_batch: int, cache: KVCache, hooks: Hooks | None, first: int = 0
    ) -> np.ndarray:
        """x [n_tok, n_embd] through the blocks from `first` on."""
        for layer in range(first, self.n_layer):
            hook = hooks.block(layer) if hooks is not None else None
            block = self.params["blocks"][layer]
            x = transformer_block(x, block, self.n_head, cache, layer, n_batch,
                                  hook)  # [n_tok, n_embd]  # fmt: skip
        return x
