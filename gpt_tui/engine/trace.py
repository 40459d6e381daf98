"""Look inside: one traced pass of a position over the cached prefix.

The kv cache already holds the keys and values of every position before the one examined, so
the position is run again over them alone, one forward pass of the model (the cost of a decode
step, the cache only read: `kv_cache.CacheReader`) whose hook points (engine/hooks.py) are
read: nothing is stored per token while generating, and there is no second copy of any
architecture's blocks here. From what the points held come three views:

- the logit lens: each layer's residual (`hook_resid_pre`, `hook_resid_post`, and
  `hook_resid_mid` inside a block) decoded with the final norm and the unembedding, the norm's
  statistics taken from that residual itself (nostalgebraist's lens);
- attention (`attn.hook_pattern`): the weights from the position over keys 0..N, per query
  head (a grouped-query model's query heads each read their kv head, so each has its own row);
- direct logit attribution: the final norm is linear once its scale (`ln_final.hook_scale`) is
  frozen at its value for the last residual, so a token's logit splits exactly into what the
  embeddings, each attention head (`attn.hook_z` through its rows of the output projection),
  each MLP (`hook_mlp_out`) and the biases wrote into the residual stream. Under
  interventions (engine/hooked.py) the parts are what reached the stream: an ablated head
  writes its ablated value; a block attention whose output a hook replaces (`L.attn`) is one
  part, its output as replaced (its heads write nothing of their own); what a hook added to
  the residual between blocks (a steering vector) is a part of its own.

Weights are read only through `x @ w` on 2-D x, `w.shape`, and `plain_rows` / `plain_columns`,
which give plain float32 slices of any weight layout (engine/layout.py's or a plain array).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from gpt_tui.engine.hooks import HookPoint
from gpt_tui.engine.kv_cache import CacheReader, KVCache
from gpt_tui.engine.layers import layer_norm, log_softmax, rms_norm
from gpt_tui.engine.scoring import TokenScore, score_rows

if TYPE_CHECKING:
    from gpt_tui.tokenizer import Tokenizer


@dataclass(frozen=True)
class Trace:
    """The residual stream of one position, and what each part of the network wrote into it.

    Layer l of `residuals` is the stream after block l (0: the embeddings); `mids[l]` is the
    stream inside block l + 1, after its attention and before its MLP. `lens_logits` decode
    `residuals` (the last row is the model's own logits), `mid_logits` decode `mids`.
    """

    position: int  # the position examined: its logits predict position + 1
    token_id: int  # the token at `position`
    residuals: np.ndarray  # [n_layer + 1, n_embd]
    mids: np.ndarray  # [n_layer, n_embd]
    lens_logits: np.ndarray  # [n_layer + 1, n_vocab]
    mid_logits: np.ndarray | None  # [n_layer, n_vocab], or None when not asked for
    attention: np.ndarray  # [n_layer, n_head, position + 1]: each query head's weights
    heads: np.ndarray  # [n_layer, n_head, n_embd]: each head's write (without c_proj's bias)
    mlps: np.ndarray  # [n_layer, n_embd]: each MLP's write, its bias included
    attn_biases: np.ndarray  # [n_layer, n_embd]: attention output biases (zero for LLaMA),
    #   or a replaced attention's whole output (its heads' rows then zero)
    final_scale: float  # the final norm's divisor for the last residual (sigma or the RMS)
    embeddings: np.ndarray | None = None  # [n_embd]: the token's (and position's) embedding
    added: np.ndarray | None = None  # [n_layer, n_embd]: what hooks added entering each block

    @property
    def n_layer(self) -> int:
        return self.heads.shape[0]

    @property
    def logits(self) -> np.ndarray:
        """The model's logits at `position` [n_vocab]."""
        return self.lens_logits[-1]


@dataclass(frozen=True)
class Attribution:
    """Direct logit attribution of `target`'s logit (minus `against`'s, when given).

    With the final norm's scale frozen the parts add up to `logit`: embeddings + heads.sum()
    + mlps.sum() + bias (the attention output biases and the final norm's beta).
    """

    target: int
    against: int | None
    logit: float  # the model's logit of `target` (or the difference to `against`)
    embeddings: float
    heads: np.ndarray  # [n_layer, n_head]
    mlps: np.ndarray  # [n_layer]
    attn_biases: np.ndarray  # [n_layer]: each attention output bias (in `bias`, too)
    bias: float
    steering: float = 0.0  # what interventions added to the residual between blocks

    @property
    def total(self) -> float:
        parts = self.embeddings + float(self.heads.sum() + self.mlps.sum()) + self.bias
        return parts + self.steering

    @property
    def attention(self) -> np.ndarray:
        """Each layer's attention, heads and bias together [n_layer]."""
        return self.heads.sum(axis=1) + self.attn_biases


@dataclass(frozen=True)
class LensRow:
    """One row of the logit lens: `layer` 0 is the embeddings, l the output of block l;
    `stage` "attention" is inside block l, after its attention and before its MLP.
    `score` is the target under this row's distribution (its rank, entropy, top tokens);
    `kl` is KL(final || this row) in nats."""

    layer: int
    stage: str  # "block" or "attention"
    score: TokenScore
    kl: float


# --- weights, whatever their layout ---------------------------------------------------------


def plain_rows(w: Any, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Rows start:stop of a weight matrix [n_in, n_out] as a plain float32 array.

    A plain array is sliced; a held layout (engine/layout.py) is turned back into a matrix;
    any other object that only multiplies gives its rows as what it does to unit vectors.
    """
    stop = w.shape[0] if stop is None else stop
    if isinstance(w, np.ndarray):
        return np.asarray(w[start:stop], dtype=np.float32)  # [n_rows, n_out]
    if hasattr(w, "to_matrix"):
        return np.asarray(w.to_matrix()[start:stop], dtype=np.float32)  # [n_rows, n_out]
    unit = np.eye(w.shape[0], dtype=np.float32)[start:stop]  # [n_rows, n_in]
    return np.asarray(unit @ w, dtype=np.float32)  # [n_rows, n_out]


def plain_columns(w: Any, ids: Sequence[int] | np.ndarray) -> np.ndarray:
    """Columns `ids` of a weight matrix [n_in, n_out], as rows [n_ids, n_in] (a tied
    embedding's lookup, an unembedding direction)."""
    ids = np.asarray(ids, dtype=np.int64)
    if isinstance(w, np.ndarray):
        return np.ascontiguousarray(w[:, ids].T, dtype=np.float32)  # [n_ids, n_in]
    if hasattr(w, "columns"):
        return np.asarray(w.columns(ids), dtype=np.float32)  # [n_ids, n_in]
    return np.ascontiguousarray(plain_rows(w)[:, ids].T)  # [n_ids, n_in]


# --- the final norm ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FinalNorm:
    """GPT-2's ln_f (centred, with beta) or LLaMA's RMSNorm (neither), and the unembedding."""

    g: np.ndarray  # [n_embd]
    b: np.ndarray | None  # [n_embd]; None for RMSNorm
    eps: float
    unembedding: Any  # [n_embd, n_vocab], any layout

    @property
    def centred(self) -> bool:
        return self.b is not None

    def apply(self, x: np.ndarray) -> np.ndarray:
        """x [n, n_embd] normalised, each row by its own statistics."""
        if self.b is not None:
            return layer_norm(x, self.g, self.b, self.eps)  # [n, n_embd]
        return rms_norm(x, self.g, self.eps)  # [n, n_embd]

    def decode(self, x: np.ndarray) -> np.ndarray:
        """Lens logits [n, n_vocab] of residuals x [n, n_embd]."""
        return self.apply(x) @ self.unembedding  # [n, n_vocab]


def final_norm(model: Any) -> FinalNorm:
    return FinalNorm(*model.readout())


# --- the traced pass: readers of the forward's hook points ---------------------------------------

READ = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "attn.hook_pattern",
        "attn.hook_z", "hook_attn_out", "hook_mlp_out")  # fmt: skip
"""The points of each block a trace reads (engine/hooks.py), and the model's own outside the
blocks (the embeddings, `ln_final.hook_scale`)."""


def trace(model: Any, cache: KVCache, position: int, *, row: int = 0, mid: bool = True) -> Trace:
    """Trace `position` over the keys and values `cache` holds for positions 0..position-1.

    One forward pass of the position's token over that prefix (`CacheReader`: the cache is
    only read, its keys and values of the position too), the cost of a decode step, whose hook
    points are read. `row` is the cache's stream; `mid` also decodes the stream after each
    attention.
    """
    if not 0 <= position < cache.length:
        raise ValueError(f"position {position} is not in the cache (it holds {cache.length})")
    token = int(cache.ids[row, position])
    seen: dict[str, np.ndarray] = {}

    def read(x: np.ndarray, hook: HookPoint) -> None:
        # The one stream's one position: [n_head, n_key] of a pattern, [...] of the others.
        seen[hook.name] = (x[0, :, -1] if hook.name.endswith("pattern") else x[0, -1]).copy()

    names = [f"blocks.{layer}.{point}" for layer in range(model.n_layer) for point in READ]
    hooks = {name: read for name in [*names, *model.hook_points]}
    logits = model.forward([token], CacheReader(cache, position, row), hooks=hooks)  # [1, n_vocab]

    def each(point: str) -> np.ndarray:
        return np.stack([seen[f"blocks.{layer}.{point}"] for layer in range(model.n_layer)])

    residuals = np.concatenate([seen["blocks.0.hook_resid_pre"][None],
                                each("hook_resid_post")])  # [n_layer+1, n_embd]  # fmt: skip
    mids = each("hook_resid_mid")  # [n_layer, n_embd]
    z = each("attn.hook_z")  # [n_layer, n_head, head_dim]
    outputs = [model.attention_output(layer) for layer in range(model.n_layer)]
    no_bias = np.zeros(model.n_embd, dtype=np.float32)  # [n_embd]
    heads = np.stack(
        [head_writes(z[layer], w_o, model.n_head) for layer, (w_o, _) in enumerate(outputs)]
    )  # [n_layer, n_head, n_embd]
    attn_biases = np.stack([no_bias if b is None else b for _, b in outputs])  # [n_layer, n_embd]
    # A hook of the model's own (its interventions: engine/hooked.py) on a block's attention
    # output replaces what its heads wrote: the block's attention is then one part, as replaced.
    replaced = set(getattr(model, "intervened_points", ()))
    for layer in range(model.n_layer):
        if f"blocks.{layer}.hook_attn_out" in replaced:
            heads[layer] = 0.0
            attn_biases[layer] = seen[f"blocks.{layer}.hook_attn_out"]
    embeddings = seen["hook_embed"]  # [n_embd]
    if "hook_pos_embed" in seen:
        embeddings = embeddings + seen["hook_pos_embed"]  # [n_embd], as the pass adds them
    entering = np.concatenate([embeddings[None], each("hook_resid_post")[:-1]])  # [n_layer, ..]
    added = each("hook_resid_pre") - entering  # [n_layer, n_embd]: zero without such hooks
    norm = final_norm(model)
    rows = np.concatenate([residuals[:-1], mids]) if mid else residuals[:-1]  # [n_rows, n_embd]
    lens = norm.decode(rows)  # [n_rows, n_vocab]
    n_res = residuals.shape[0]
    return Trace(
        position=position,
        token_id=token,
        residuals=residuals,
        mids=mids,
        lens_logits=np.concatenate([lens[: n_res - 1], logits]),  # the last: the model's own
        mid_logits=lens[n_res - 1 :] if mid else None,
        attention=each("attn.hook_pattern"),  # [n_layer, n_head, position + 1]
        heads=heads,  # [n_layer, n_head, n_embd]
        mlps=each("hook_mlp_out"),  # [n_layer, n_embd]  (its bias included)
        attn_biases=attn_biases,  # [n_layer, n_embd]
        final_scale=float(seen["ln_final.hook_scale"][0]),
        embeddings=embeddings,  # [n_embd]
        added=added,  # [n_layer, n_embd]
    )


def trace_context(
    model: Any, ids: Sequence[int], position: int, cache: KVCache | None = None, *, mid: bool = True
) -> Trace:
    """Trace `position` of context `ids`, over `cache` if it holds the prefix (`holding`)."""
    return trace(model, holding(model, ids, position, cache), position, mid=mid)


def holding(model: Any, ids: Sequence[int], position: int, cache: KVCache | None = None) -> KVCache:
    """`cache` if it holds ids[:position + 1], else a cache of its own that does, computed now
    (`cache` is left as it is)."""
    if not 0 <= position < len(ids):
        raise ValueError(f"position {position} is outside the {len(ids)} tokens")
    if position >= model.n_ctx:
        raise ValueError(f"position {position} is beyond the context of {model.n_ctx}")
    prefix = list(ids[: position + 1])
    if cache is None or cache.n_batch != 1 or cache.common_prefix(prefix) < len(prefix):
        cache = model.new_cache(n_ctx=len(prefix))
        model.forward(prefix, cache, last_only=True)
    return cache


def head_writes(z: np.ndarray, w_o: Any, n_head: int) -> np.ndarray:
    """Each head's write to the residual stream [n_head, n_embd]: its result z [n_head,
    head_dim] through its own rows of the output projection [n_head*head_dim, n_embd].

    One product in the weights' own layout, row h holding head h's result in its columns and
    zeros elsewhere: the projection is read once, never copied out of its layout."""
    head_dim = z.shape[1]
    spread = np.zeros((n_head, n_head, head_dim), dtype=np.float32)  # [n_head, n_head, hd]
    spread[np.arange(n_head), np.arange(n_head)] = z  # head h's result in its own columns
    return spread.reshape(n_head, n_head * head_dim) @ w_o  # [n_head, n_embd]


# --- what the trace says -----------------------------------------------------------------------


def attribute(model: Any, t: Trace, target: int, against: int | None = None) -> Attribution:
    """Direct logit attribution of `target` at the traced position (or of its logit minus
    `against`'s: why this token and not that one), with the final norm's scale frozen."""
    norm = final_norm(model)
    ids = [target] if against is None else [target, against]
    columns = plain_columns(norm.unembedding, ids).astype(np.float64)  # [1 or 2, n_embd]
    u = columns[0] if against is None else columns[0] - columns[1]  # [n_embd]
    direction = norm.g.astype(np.float64) * u / t.final_scale  # [n_embd]

    def write(parts: np.ndarray) -> np.ndarray:
        """The logit each part [..., n_embd] adds through the frozen norm [...]."""
        parts = parts.astype(np.float64)  # [..., n_embd]
        if norm.centred:  # the mean is linear too: each part's own is taken out
            parts = parts - parts.mean(axis=-1, keepdims=True)
        return parts @ direction  # [...]

    attn_biases = write(t.attn_biases)  # [n_layer]
    beta = float(norm.b.astype(np.float64) @ u) if norm.b is not None else 0.0
    logit = float(t.logits[target]) - (float(t.logits[against]) if against is not None else 0.0)
    embedded = t.residuals[0] if t.embeddings is None else t.embeddings  # [n_embd]
    steering = 0.0 if t.added is None or not t.added.any() else float(write(t.added).sum())
    return Attribution(
        target=target,
        against=against,
        logit=logit,
        embeddings=float(write(embedded)),
        heads=write(t.heads),  # [n_layer, n_head]
        mlps=write(t.mlps),  # [n_layer]
        attn_biases=attn_biases,
        bias=float(attn_biases.sum()) + beta,
        steering=steering,
    )


def lens_rows(t: Trace, target: int, tokenizer: Tokenizer, n_top: int = 5) -> list[LensRow]:
    """The logit lens as rows: embeddings, then each block (after its attention first, when
    the trace has those), the last row the model's own distribution."""
    names = [(0, "block")]
    for layer in range(1, t.n_layer + 1):
        names += [(layer, "attention")] if t.mid_logits is not None else []
        names.append((layer, "block"))
    logits = np.stack([t.mid_logits[layer - 1] if stage == "attention" else t.lens_logits[layer]
                       for layer, stage in names])  # [n_rows, n_vocab]  # fmt: skip
    scores = score_rows(logits, [target] * len(names), tokenizer, n_top, t.position + 1)
    logp = log_softmax(logits.astype(np.float64))  # [n_rows, n_vocab]
    final = logp[-1]  # [n_vocab]: the model's own
    kl = np.maximum(np.exp(final) @ (final - logp).T, 0.0)  # [n_rows]  KL(final || row)
    return [LensRow(layer, stage, score, float(d))
            for (layer, stage), score, d in zip(names, scores, kl, strict=True)]  # fmt: skip
