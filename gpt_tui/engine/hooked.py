"""A set of interventions as one value, and a model that runs every forward pass with them.

`Interventions` is what a run asks for (ablations, a steering vector): a frozen value that
crosses the backend, the playground and the command line. `intervention_hooks` turns it into
hooks for one run (engine/interventions.py makes them), and `HookedModel` is the model with
those hooks on every pass, so that generation, scoring, look inside and the sampler view run
under them without knowing: they call `forward` as they always do.

Why a model and not a `hooks` argument threaded through generation: every pass of a run must
carry the same hooks (prefill, each decode step, speculation's checks), or the kv cache would
hold keys and values of one intervention set and the next pass compute under another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpt_tui.engine.hooks import HookFn
from gpt_tui.engine.interventions import (
    Ablation,
    ablation_hooks,
    merged,
    steering_hooks,
    steering_vector,
)


@dataclass(frozen=True)
class Steering:
    """Activation addition: coef * (residual entering block `layer` at the last token of `add`
    minus the same for `sub`), added at every position (token ids of the model's tokenizer;
    the texts as typed, to show)."""

    layer: int
    coef: float
    add: tuple[int, ...]
    sub: tuple[int, ...]
    add_text: str = ""
    sub_text: str = ""

    def describe(self) -> str:
        return f"steer {self.add_text!r} - {self.sub_text!r} at block {self.layer} x {self.coef:g}"


@dataclass(frozen=True)
class Interventions:
    """What a run changes in the model: ablations (engine/interventions.py's `Ablation`), then
    an optional steering vector. Empty (falsy): the model as it is."""

    ablations: tuple[Ablation, ...] = ()
    steering: Steering | None = None

    def __bool__(self) -> bool:
        return bool(self.ablations) or self.steering is not None

    @property
    def needs_text(self) -> bool:
        """A mean ablation averages over the run's own text: its hooks depend on it."""
        return any(a.mean for a in self.ablations)

    def describe(self) -> str:
        parts = [f"ablate {a.describe()}" for a in self.ablations]
        if self.steering is not None:
            parts.append(self.steering.describe())
        return "; ".join(parts) or "none"

    def check(self, n_layer: int, n_head: int) -> None:
        """ValueError, with a message a user can act on, for a block or head the model lacks,
        or a steering text with no token."""
        for a in self.ablations:
            if not 0 <= a.layer < n_layer:
                raise ValueError(
                    f"ablation {a.describe()!r}: no block {a.layer}; the blocks are 0-{n_layer - 1}"
                )
            if a.part == "head" and not (a.head is not None and 0 <= a.head < n_head):
                raise ValueError(
                    f"ablation {a.describe()!r}: no head {a.head}; the heads are 0-{n_head - 1}"
                )
        s = self.steering
        if s is not None:
            if not 0 <= s.layer < n_layer:
                raise ValueError(
                    f"--steer-layer {s.layer}: no block {s.layer}; the blocks are 0-{n_layer - 1}"
                )
            if not s.add or not s.sub:
                raise ValueError("steering needs two texts of at least one token each")


def intervention_hooks(
    model: Any, interventions: Interventions, ids: Sequence[int] | None = None
) -> dict[str, list[HookFn]]:
    """The hooks of `interventions` on `model`; a mean ablation averages over `ids` (the run's
    text, read without the interventions; its last n_ctx tokens when it is longer, as a run
    keeps). The steering vector is read without them too."""
    if ids is not None and len(ids) > model.n_ctx:
        ids = list(ids)[-model.n_ctx :]
    hooks = ablation_hooks(model, interventions.ablations, ids) if interventions.ablations else {}
    s = interventions.steering
    if s is not None:
        vector = steering_vector(model, s.add, s.sub, s.layer)  # [n_embd]
        hooks = merged(hooks, steering_hooks(s.layer, vector, s.coef))
    return hooks


class HookedModel:
    """`model` with `hooks` on every forward pass (and `resume`); a pass's own hooks run after
    them, so readers see what the interventions left. Everything else is the model's."""

    def __init__(self, model: Any, hooks: Mapping[str, Sequence[HookFn]]) -> None:
        self.model = model
        self.hooks = [(name, fn) for name, fns in hooks.items() for fn in fns]

    def forward(
        self,
        ids: Sequence[int] | np.ndarray,
        cache: Any = None,
        *,
        last_only: bool = False,
        hooks: Any = None,
        **kwargs: Any,
    ) -> np.ndarray:
        return self.model.forward(
            ids, cache, last_only=last_only, hooks=self._with(hooks), **kwargs
        )

    def resume(self, *args: Any, hooks: Any = None, **kwargs: Any) -> np.ndarray:
        return self.model.resume(*args, hooks=self._with(hooks), **kwargs)

    @property
    def intervened_points(self) -> frozenset[str]:
        """The hook points the model's own hooks are at (look inside reads which parts they
        replace: engine/trace.py)."""
        return frozenset(name for name, _ in self.hooks)

    def _with(self, hooks: Any) -> list[tuple[str, HookFn]]:
        if hooks is None:
            return self.hooks
        if isinstance(hooks, Mapping):
            extra = [(n, f) for n, fs in hooks.items()
                     for f in (fs if isinstance(fs, (list, tuple)) else [fs])]  # fmt: skip
        else:
            extra = list(hooks)
        return [*self.hooks, *extra]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


def with_interventions(
    model: Any, interventions: Interventions | None, ids: Sequence[int] | None = None
) -> Any:
    """`model` itself without interventions, else a `HookedModel` with their hooks."""
    if not interventions:
        return model
    return HookedModel(model, intervention_hooks(model, interventions, ids))
