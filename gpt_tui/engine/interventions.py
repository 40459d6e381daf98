"""Interventions on the one forward pass, as hooks (engine/hooks.py): ablation, steering and
activation patching.

- Ablation sets a part's output to zero, or to its mean over a text's positions: a head (its
  slice of `attn.hook_z`), a block's attention (`hook_attn_out`, its bias included) or a
  block's MLP (`hook_mlp_out`, biases included), as TransformerLens ablates them. The mean is
  taken once, from a pass of the text without the ablation, and then replaces the part at
  every position of every pass, so a pass over a kv cache agrees with a full one.
- Steering (activation addition) adds `coef` times a vector to the residual entering block L
  (`hook_resid_pre`) at every position; the vector is the residual entering block L at the
  last token of one text minus the same for another.
- Patching follows TransformerLens's `patching` module: the corrupted text is run with one
  activation taken from the clean text's run (the residual entering a block at one position:
  `get_act_patch_resid_pre`; a head's output at every position: `..._attn_head_out_all_pos`;
  an MLP's output at every position), and the logit difference between an answer and an
  alternative at the last position is normalised as (patched - corrupted) / (clean -
  corrupted): 1 where the patch restores the clean behaviour, 0 where it changes nothing.

A sweep is many passes, so each computes only what a patch can change, many patches at once:
a residual patched at position p, a stream per block, reuses the corrupted text's keys and
values before p from one cache and computes positions p.. only; a head's or an MLP's patch
starts at its block from the corrupted residual entering it (`resume`), a head's with a stream
per head of the block.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpt_tui.engine.hooks import HookFn, HookPoint, run_with_cache

PARTS = ("head", "attn", "mlp")
RESID_GROUPS = 2
"""A residual sweep's positions go in this many groups, each a pass per block: a group starting
at position a computes positions a.. only (fewer groups recompute more positions, more make
more and smaller passes). A whole sweep on GPT-2 124M shapes, 16 tokens, 3 rounds on a loaded
2-core Intel Xeon, median: 9.7 s with 1 group, 8.4 with 2, 9.2 with 4, 12.0 with 8."""
_SPEC = re.compile(r"(\d+)\.(\d+|attn|mlp)(:mean)?")


@dataclass(frozen=True)
class Ablation:
    """Block `layer`'s `part` ("head" with `head`, "attn" or "mlp") set to zero, or to its
    mean over a text's positions (`mean`)."""

    layer: int
    part: str
    head: int | None = None
    mean: bool = False

    @property
    def point(self) -> str:
        """The hook point the ablation replaces."""
        local = {"head": "attn.hook_z", "attn": "hook_attn_out", "mlp": "hook_mlp_out"}
        return f"blocks.{self.layer}.{local[self.part]}"

    def describe(self) -> str:
        what = f"{self.layer}.{self.head}" if self.part == "head" else f"{self.layer}.{self.part}"
        return what + (":mean" if self.mean else "")


def parse_ablation(spec: str, n_layer: int, n_head: int) -> Ablation:
    """ "L.H" (head H of block L), "L.attn", "L.mlp", each with an optional ":mean"; blocks
    and heads from 0. ValueError with a message a user can act on otherwise."""
    match = _SPEC.fullmatch(spec.strip())
    if match is None:
        raise ValueError(f"ablation {spec!r} is not L.H, L.attn or L.mlp (optionally :mean)")
    layer, what, mean = int(match[1]), match[2], match[3] is not None
    if layer >= n_layer:
        raise ValueError(f"ablation {spec!r}: no block {layer}; the blocks are 0-{n_layer - 1}")
    if what in ("attn", "mlp"):
        return Ablation(layer, what, mean=mean)
    if int(what) >= n_head:
        raise ValueError(f"ablation {spec!r}: no head {what}; the heads are 0-{n_head - 1}")
    return Ablation(layer, "head", int(what), mean)


def ablation_hooks(
    model: Any, ablations: Sequence[Ablation], ids: Sequence[int] | None = None
) -> dict[str, list[HookFn]]:
    """Hooks that ablate each of `ablations`; a mean ablation takes its mean over the
    positions of `ids` (a pass of them without the ablations)."""
    for a in ablations:
        if a.part not in PARTS or not 0 <= a.layer < model.n_layer:
            raise ValueError(f"no part {a.describe()!r} in a model of {model.n_layer} blocks")
        if a.part == "head" and not (a.head is not None and 0 <= a.head < model.n_head):
            raise ValueError(f"no head {a.head} in a model of {model.n_head} heads")
    means: dict[str, np.ndarray] = {}
    if any(a.mean for a in ablations):
        if ids is None or len(ids) == 0:
            raise ValueError("a mean ablation needs the text whose positions it averages")
        names = sorted({a.point for a in ablations if a.mean})
        _, found = run_with_cache(model, ids, names)
        means = {name: found[name][0].mean(axis=0) for name in names}  # [...] over positions
    hooks: dict[str, list[HookFn]] = {}
    for a in ablations:
        hooks.setdefault(a.point, []).append(_ablate(a, means.get(a.point)))
    return hooks


def _ablate(a: Ablation, mean: np.ndarray | None) -> HookFn:
    value = np.float32(0.0) if mean is None else mean  # [n_head, hd] or [n_embd]
    if a.part == "head":
        head = a.head
        part = value if mean is None else value[head]  # [head_dim] or a scalar

        def ablate_head(z: np.ndarray, hook: HookPoint) -> None:
            z[:, :, head] = part  # z [n_batch, n_seq, n_head, head_dim]

        return ablate_head

    def ablate(x: np.ndarray, hook: HookPoint) -> None:
        x[...] = value  # x [n_batch, n_seq, n_embd]

    return ablate


def steering_vector(model: Any, add: Sequence[int], sub: Sequence[int], layer: int) -> np.ndarray:
    """The residual entering block `layer` at the last token of `add` minus the same for
    `sub` [n_embd]."""
    if not 0 <= layer < model.n_layer:
        raise ValueError(f"no block {layer}; the blocks are 0-{model.n_layer - 1}")
    name = f"blocks.{layer}.hook_resid_pre"
    _, a = run_with_cache(model, add, [name])
    _, b = run_with_cache(model, sub, [name])
    return a[name][0, -1] - b[name][0, -1]  # [n_embd]


def steering_hooks(layer: int, vector: np.ndarray, coef: float) -> dict[str, list[HookFn]]:
    """`coef` * vector added to the residual entering block `layer` at every position."""
    push = (np.float32(coef) * np.asarray(vector, dtype=np.float32)).astype(np.float32)  # [n_embd]

    def steer(x: np.ndarray, hook: HookPoint) -> None:
        x += push  # [n_batch, n_seq, n_embd]

    return {f"blocks.{layer}.hook_resid_pre": [steer]}


def merged(*hooks: Mapping[str, Sequence[HookFn]]) -> dict[str, list[HookFn]]:
    """Several sets of hooks as one (at a shared point, in the order given)."""
    out: dict[str, list[HookFn]] = {}
    for h in hooks:
        for name, fns in h.items():
            out.setdefault(name, []).extend(fns)
    return out


# --- activation patching -------------------------------------------------------------------------


@dataclass(frozen=True)
class Patching:
    """A patching sweep's normalised logit differences (1: the clean run's, 0: the corrupted
    run's), and the two runs' own differences."""

    clean: float
    corrupted: float
    resid_pre: np.ndarray  # [n_layer, n_tok]: the residual entering each block at each position
    heads: np.ndarray  # [n_layer, n_head]: each head's output at every position
    mlps: np.ndarray  # [n_layer]: each MLP's output at every position


Progress = Callable[[int, int], None]
"""progress(done, total): passes of the sweep done so far, of all."""


def patch(
    model: Any,
    clean: Sequence[int],
    corrupt: Sequence[int],
    answer: int,
    against: int,
    *,
    progress: Progress | None = None,
) -> Patching:
    """Activation patching from `clean` into `corrupt` (the same number of tokens), measured
    by logit(answer) - logit(against) at the last position (see the module's docstring)."""
    clean, corrupt = (
        np.asarray(clean, dtype=np.int64),
        np.asarray(corrupt, dtype=np.int64),
    )  # [n_tok]
    if clean.ndim != 1 or clean.shape != corrupt.shape or len(clean) == 0:
        raise ValueError(
            f"patching needs two texts of the same token length, not {len(clean)} and "
            f"{len(corrupt)} tokens"
        )
    n_layer, n_head, n_tok = model.n_layer, model.n_head, len(clean)
    names = [f"blocks.{layer}.{point}" for layer in range(n_layer)
             for point in ("hook_resid_pre", "attn.hook_z", "hook_mlp_out")]  # fmt: skip
    clean_logits, found = run_with_cache(model, clean, names)
    corrupt_cache = model.new_cache(n_ctx=n_tok)
    corrupt_logits, inputs = run_with_cache(model, corrupt, _names(n_layer, "hook_resid_pre"),
                                            cache=corrupt_cache)  # [n_tok, n_vocab]  # fmt: skip

    def difference(logits: np.ndarray) -> np.ndarray:
        last = logits[..., -1, :].astype(np.float64)  # [..., n_vocab]
        return last[..., answer] - last[..., against]  # [...]

    clean_diff, corrupt_diff = float(difference(clean_logits)), float(difference(corrupt_logits))
    span = clean_diff - corrupt_diff

    def normalised(logits: np.ndarray) -> np.ndarray:
        return (difference(logits) - corrupt_diff) / span if span else np.zeros(len(logits))

    total, done = 2 * n_layer, 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    # The residual entering block l at position p: a pass per block and group of positions
    # a.., a stream per position of the group, each starting at block l after the corrupted
    # run's keys and values before a (the patch cannot change them) and computing a.. only.
    resid = np.empty((n_layer, n_tok))  # [n_layer, n_tok]
    group = -(-n_tok // RESID_GROUPS)
    starts = list(reversed(range(0, n_tok, group)))  # a truncated cache cannot grow: last first
    prefixes = {}
    for a in starts:
        corrupt_cache.truncate(a)
        prefixes[a] = corrupt_cache.repeat(min(group, n_tok - a))
    for layer in range(n_layer):
        name = f"blocks.{layer}.hook_resid_pre"
        for a, streams in prefixes.items():
            n = streams.n_batch  # positions a..a+n-1 patched, one in each stream
            fns = [_put(j, (j,), found[name][0, a + j]) for j in range(n)]
            entering = np.repeat(inputs[name][:, a:], n, axis=0)  # [n, n_tok - a, n_embd]
            logits = model.resume(layer, entering, streams, last_only=True, hooks={name: fns})
            resid[layer, a : a + n] = normalised(logits)
        step()
    # Each head's output at every position, a stream per head of a block; each MLP's, one
    # pass per block: the passes start at the block patched (`resume`), from the corrupted
    # run's residual entering it, since a patch cannot change the blocks before it.
    heads, mlps = np.empty((n_layer, n_head)), np.empty(n_layer)  # [n_layer, n_head], [n_layer]
    for layer in range(n_layer):
        entering = inputs[f"blocks.{layer}.hook_resid_pre"]  # [1, n_tok, n_embd]
        z = found[f"blocks.{layer}.attn.hook_z"][0]  # [n_tok, n_head, head_dim]
        fns = [_put(h, (slice(None), h), z[:, h]) for h in range(n_head)]
        logits = model.resume(layer, np.repeat(entering, n_head, axis=0), last_only=True,
                              hooks={f"blocks.{layer}.attn.hook_z": fns})  # fmt: skip
        heads[layer] = normalised(logits)
        mlp = f"blocks.{layer}.hook_mlp_out"
        logits = model.resume(layer, entering, last_only=True,
                              hooks={mlp: _put(0, (slice(None),), found[mlp][0])})  # fmt: skip
        mlps[layer] = normalised(logits)[0]
        step()
    return Patching(clean_diff, corrupt_diff, resid, heads, mlps)


def _names(n_layer: int, point: str) -> list[str]:
    return [f"blocks.{layer}.{point}" for layer in range(n_layer)]


def _put(stream: int, where: tuple, value: np.ndarray) -> HookFn:
    """A hook that writes `value` into stream `stream` of its array, at `where` (an index of
    the stream's [n_seq, ...])."""

    def put(x: np.ndarray, hook: HookPoint) -> None:
        x[(stream, *where)] = value

    return put
