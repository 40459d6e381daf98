"""Hook points: the arrays a forward pass computes, by TransformerLens's names, and the hooks
that read or replace them.

Every forward pass (engine/gpt2.py, engine/llama.py) passes its intermediate arrays through
these points, so that look inside (engine/trace.py), ablation, steering and patching
(engine/interventions.py) are functions of one pass instead of second copies of the model:

    hook_embed, hook_pos_embed (GPT-2 only)            [n_batch, n_seq, n_embd]
    blocks.{l}.hook_resid_pre                          [n_batch, n_seq, n_embd]
    blocks.{l}.attn.hook_q                             [n_batch, n_seq, n_head, head_dim]
    blocks.{l}.attn.hook_k, blocks.{l}.attn.hook_v     [n_batch, n_seq, n_kv_head, head_dim]
    blocks.{l}.attn.hook_pattern                       [n_batch, n_head, n_seq, n_key]
    blocks.{l}.attn.hook_z                             [n_batch, n_seq, n_head, head_dim]
    blocks.{l}.hook_attn_out                           [n_batch, n_seq, n_embd]
    blocks.{l}.hook_resid_mid                          [n_batch, n_seq, n_embd]
    blocks.{l}.hook_mlp_out                            [n_batch, n_seq, n_embd]
    blocks.{l}.hook_resid_post                         [n_batch, n_seq, n_embd]
    ln_final.hook_scale                                [n_batch, n_seq, 1]

Blocks and heads count from 0. `n_seq` is the positions of this pass (a pass over a kv cache
sees only its new ones, as TransformerLens's does), `n_key` the cached ones and those.
Differences from TransformerLens worth knowing: the LLaMA path's q and k are those before the
rotary embedding (TransformerLens's `hook_q`, `hook_k` too; it has `hook_rot_q/k` after), in
GGUF's layout, whose head dimensions pair (2i, 2i+1) where Hugging Face's pair (i, i + hd/2);
`hook_pattern` is the softmax's output, with no `hook_attn_scores` before it; attention output
biases are in `hook_attn_out`, not `hook_z`; `ln_final.hook_scale` is the final norm's divisor
(sigma, or the RMS for RMSNorm).

A hook is `fn(activation, hook) -> array | None`, TransformerLens's signature (`hook.name`,
`hook.layer`): it may read the array, change it in place, or return a replacement of the same
shape, which is written into the pass's own array. Either way the pass continues from what the
hooks left, and the kv cache holds the keys and values computed from it. The array is the
pass's own and may be reused after the hook returns: keep a copy (`run_with_cache` does).

No cost without hooks: a pass given none checks `hooks is None` once per block and once per
point of a hooked block; nothing is called, copied or reshaped for a point without a hook.
A hooked pass computes the whole prompt in one chunk (so that a hook sees every position at
once), and a hook on `hook_pattern` makes attention compute its weights explicitly beside the
planned kernel (engine/attention.py tiles them and never holds them): the kernel's result is
kept unless a hook changed the weights, so hooks that only read change nothing, bit for bit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from gpt_tui.engine.attention import attend
from gpt_tui.engine.layers import softmax

MODEL_POINTS = ("hook_embed", "hook_pos_embed", "ln_final.hook_scale")
BLOCK_POINTS = (
    "hook_resid_pre",
    "attn.hook_q",
    "attn.hook_k",
    "attn.hook_v",
    "attn.hook_pattern",
    "attn.hook_z",
    "hook_attn_out",
    "hook_resid_mid",
    "hook_mlp_out",
    "hook_resid_post",
)
_BLOCK_NAME = re.compile(r"blocks\.(\d+)\.(.+)")


@dataclass(frozen=True)
class HookPoint:
    """The point a hook is called at: `name` in full, `layer` its block (None outside one)."""

    name: str
    layer: int | None = None


class HookFn(Protocol):
    def __call__(self, activation: np.ndarray, hook: HookPoint) -> np.ndarray | None: ...


HookSpec = Mapping[str, "HookFn | Sequence[HookFn]"] | Iterable[tuple[str, HookFn]]
"""What a forward pass takes as `hooks`: {name: fn or [fn, ...]}, or (name, fn) pairs (as
TransformerLens's `fwd_hooks`); several hooks at one point run in the order given."""


def hook_names(model: Any) -> list[str]:
    """Every hook point of `model`, in the order its pass reaches them."""
    points = model.hook_points  # the points outside the blocks: the architecture's own
    blocks = [f"blocks.{layer}.{p}" for layer in range(model.n_layer) for p in BLOCK_POINTS]
    return [*(p for p in points if p != "ln_final.hook_scale"), *blocks, "ln_final.hook_scale"]


class BlockHooks:
    """The hooks of one block, called by its points' local names ("attn.hook_z")."""

    def __init__(self, layer: int, fns: dict[str, list[HookFn]]) -> None:
        self.layer = layer
        self._fns = fns
        self._points = {name: HookPoint(f"blocks.{layer}.{name}", layer) for name in fns}

    def __call__(self, name: str, x: np.ndarray) -> bool:
        """Run the hooks at `name` on x (the pass's array, or a view of it); a replacement is
        written into x. Whether any hook returned one."""
        fns = self._fns.get(name)
        return False if fns is None else _run(fns, self._points[name], x)

    def qkv(self, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> None:
        """The q, k and v points, each a view of the pass's projections."""
        for name, x in (("attn.hook_q", q), ("attn.hook_k", k), ("attn.hook_v", v)):
            self(name, x)

    def attend(
        self, q: np.ndarray, keys: np.ndarray, values: np.ndarray, n_seq: int, group: int
    ) -> np.ndarray:
        """engine/attention.py's `attend`, with `hook_pattern` between the weights and their
        product with the values when it has hooks. The planned kernel's result stands unless a
        hook changed the weights (in place or by a replacement)."""
        out = attend(q, keys, values, n_seq, group)  # [n_b, n_kv, n_seq*group, head_dim]
        if "attn.hook_pattern" not in self._fns:
            return out
        weights = pattern(q, keys, n_seq, group)  # [n_batch, n_head, n_seq, n_key]
        before = weights.copy()  # [n_batch, n_head, n_seq, n_key]
        replaced = self("attn.hook_pattern", weights)
        if replaced or not np.array_equal(weights, before):
            return pattern_times_values(weights, values, group)  # [n_b, n_kv, n_seq*g, hd]
        return out


class Hooks:
    """Hooks checked against a model's points once, then handed to its forward pass: `block`
    gives a block's (None when it has none), calling one runs a point outside the blocks."""

    def __init__(
        self, spec: HookSpec, n_layer: int, model_points: Sequence[str] = MODEL_POINTS
    ) -> None:
        pairs = _pairs(spec)
        known = set(model_points)
        by_block: list[dict[str, list[HookFn]]] = [{} for _ in range(n_layer)]
        self._fns: dict[str, list[HookFn]] = {}
        for name, fn in pairs:
            if not callable(fn):
                raise TypeError(f"the hook at {name!r} is not callable: {fn!r}")
            match = _BLOCK_NAME.fullmatch(name)
            if match and match[2] in BLOCK_POINTS and int(match[1]) < n_layer:
                by_block[int(match[1])].setdefault(match[2], []).append(fn)
            elif name in known:
                self._fns.setdefault(name, []).append(fn)
            else:
                raise ValueError(_unknown(name, n_layer, model_points))
        self._blocks = [BlockHooks(i, fns) if fns else None for i, fns in enumerate(by_block)]
        self._points = {name: HookPoint(name) for name in self._fns}

    def block(self, layer: int) -> BlockHooks | None:
        return self._blocks[layer]

    def has(self, name: str) -> bool:
        return name in self._fns

    def final_scale(self, n_batch: int, n_seq: int) -> Callable[[np.ndarray], object] | None:
        """The final norm's `scale_hook` (engine/layers.py): `ln_final.hook_scale` on its
        divisor [n_tok, 1] seen as [n_batch, n_seq, 1]; None without hooks there."""
        if "ln_final.hook_scale" not in self._fns:
            return None
        return lambda scale: self("ln_final.hook_scale", scale.reshape(n_batch, n_seq, 1))

    def __call__(self, name: str, x: np.ndarray) -> bool:
        fns = self._fns.get(name)
        return False if fns is None else _run(fns, self._points[name], x)


def as_hooks(spec: Hooks | HookSpec | None, model: Any) -> Hooks | None:
    """What `model`'s forward pass keeps of its `hooks` argument: None when there are none."""
    if spec is None or isinstance(spec, Hooks):
        return spec
    hooks = Hooks(spec, model.n_layer, model.hook_points)
    return hooks if hooks._fns or any(b is not None for b in hooks._blocks) else None


def run_with_cache(
    model: Any,
    ids: Any,
    names: Sequence[str] | Callable[[str], bool] | None = None,
    *,
    hooks: HookSpec | None = None,
    cache: Any = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The logits of `model.forward(ids, cache)` and a copy of the array at each point of
    `names` (a list, a filter on names, or None: every point), as the pass computed it after
    any `hooks` (which run first at a point they share)."""
    everything = hook_names(model)
    if names is None:
        chosen = everything
    elif callable(names):
        chosen = [name for name in everything if names(name)]
    else:
        chosen = list(names)
    found: dict[str, np.ndarray] = {}

    def keep(x: np.ndarray, hook: HookPoint) -> None:
        found[hook.name] = x.copy()

    pairs = [*_pairs(hooks or {}), *((name, keep) for name in chosen)]
    logits = model.forward(ids, cache, hooks=pairs)
    return logits, found


def pattern(q: np.ndarray, keys: np.ndarray, n_seq: int, group: int) -> np.ndarray:
    """Attention weights [n_batch, n_head, n_seq, n_key] from q [n_batch, n_kv_head,
    n_seq*group, head_dim] (scaled, rows position-major as `attend` takes them) and keys
    [n_batch, n_kv_head, n_key, head_dim]; query head kv*group + g reads kv head kv."""
    n_batch, n_kv_head, _, _ = q.shape
    n_key = keys.shape[2]
    scores = q @ keys.swapaxes(-1, -2)  # [n_batch, n_kv_head, n_seq*group, n_key]
    seen = np.arange(n_key)[None, :] <= np.arange(n_key - n_seq, n_key)[:, None]  # [n_seq, n_key]
    scores = scores.reshape(n_batch, n_kv_head, n_seq, group, n_key)  # [.., n_seq, g, n_key]
    scores = np.where(seen[:, None, :], scores, np.float32(-np.inf))  # [.., n_seq, g, n_key]
    weights = softmax(scores.transpose(0, 1, 3, 2, 4))  # [n_b, n_kv, group, n_seq, n_key]
    return weights.reshape(n_batch, n_kv_head * group, n_seq, n_key)  # [n_b, n_head, ..]


def pattern_times_values(weights: np.ndarray, values: np.ndarray, group: int) -> np.ndarray:
    """Each head's weights [n_batch, n_head, n_seq, n_key] times its kv head's values
    [n_batch, n_kv_head, n_key, head_dim], in `attend`'s layout [n_b, n_kv, n_seq*group, hd]."""
    n_batch, n_head, n_seq, n_key = weights.shape
    n_kv_head, head_dim = values.shape[1], values.shape[3]
    w = weights.reshape(n_batch, n_kv_head, group, n_seq, n_key)  # [n_b, n_kv, g, n_seq, n_key]
    z = w.astype(np.float32) @ values[:, :, None]  # [n_batch, n_kv_head, group, n_seq, hd]
    z = z.transpose(0, 1, 3, 2, 4)  # [n_batch, n_kv_head, n_seq, group, head_dim]
    return z.reshape(n_batch, n_kv_head, n_seq * group, head_dim)  # [n_b, n_kv, n_seq*g, hd]


def _run(fns: list[HookFn], point: HookPoint, x: np.ndarray) -> bool:
    replaced = False
    for fn in fns:
        out = fn(x, point)
        if out is None or out is x:
            continue
        out = np.asarray(out)
        if out.shape != x.shape:
            raise ValueError(
                f"the hook at {point.name} returned shape {out.shape}; the point's is {x.shape}"
            )
        x[...] = out
        replaced = True
    return replaced


def _pairs(spec: HookSpec) -> list[tuple[str, HookFn]]:
    if isinstance(spec, Hooks):
        raise TypeError("Hooks are already checked: pass them to forward as they are")
    if isinstance(spec, Mapping):
        pairs = []
        for name, fns in spec.items():
            pairs += [(name, fn) for fn in (fns if isinstance(fns, (list, tuple)) else [fns])]
        return pairs
    return [(name, fn) for name, fn in spec]


def _unknown(name: str, n_layer: int, model_points: Sequence[str]) -> str:
    match = _BLOCK_NAME.fullmatch(name)
    if match and match[2] in BLOCK_POINTS:
        return f"no block {match[1]} for hook {name!r}: the model's blocks are 0-{n_layer - 1}"
    points = ", ".join((*model_points, *(f"blocks.{{l}}.{p}" for p in BLOCK_POINTS)))
    return f"no hook point {name!r}; known: {points}"
