"""The app's interventions as a list the user builds: ablations toggled from look inside's
attribution (zero or mean), one steering vector from two texts, each entry removable.

Pure functions over engine/hooked.py's `Interventions` (a frozen value: every change makes a
new set, so the local backend's kv cache, kept per set, never mixes two). Blocks and heads are
named from 1 here, as look inside names them ("L3 H5"); the engine counts from 0.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from gpt_tui.engine.hooked import Interventions, Steering
from gpt_tui.engine.interventions import Ablation
from gpt_tui.errors import InputError

_PART_NAMES = {"head": "H{head}", "attn": "attn", "mlp": "MLP"}


def _same_part(a: Ablation, b: Ablation) -> bool:
    return (a.layer, a.part, a.head) == (b.layer, b.part, b.head)


def toggled(interventions: Interventions, ablation: Ablation) -> tuple[Interventions, bool]:
    """`ablation` added, or removed when the part is ablated the same way already; a part
    ablated the other way (zero or mean) is switched to this one. The new set, and whether the
    part is now ablated."""
    current = interventions.ablations
    same = [a for a in current if _same_part(a, ablation)]
    if same and same[0] == ablation:
        kept = tuple(a for a in current if a != ablation)
        return dataclasses.replace(interventions, ablations=kept), False
    if same:
        kept = tuple(ablation if _same_part(a, ablation) else a for a in current)
    else:
        kept = (*current, ablation)
    return dataclasses.replace(interventions, ablations=kept), True


def without(interventions: Interventions, index: int) -> Interventions:
    """The set without entry `index` of `entries` (the ablations in order, then steering)."""
    n = len(interventions.ablations)
    if index == n and interventions.steering is not None:
        return dataclasses.replace(interventions, steering=None)
    if not 0 <= index < n:
        raise IndexError(f"no intervention {index + 1}")
    kept = interventions.ablations[:index] + interventions.ablations[index + 1 :]
    return dataclasses.replace(interventions, ablations=kept)


def ablation_name(a: Ablation) -> str:
    """ "L3 H5", "L3 attn", "L3 MLP (mean)": blocks and heads from 1."""
    part = _PART_NAMES[a.part].format(head=(a.head or 0) + 1)
    return f"L{a.layer + 1} {part}" + (" (mean)" if a.mean else "")


def steering_name(s: Steering) -> str:
    return f"steer L{s.layer + 1} x {s.coef:g}: {s.add_text!r} - {s.sub_text!r}"


def entries(interventions: Interventions) -> list[str]:
    """Each intervention in a line, in the order `without` counts them."""
    lines = [f"ablate {ablation_name(a)}" for a in interventions.ablations]
    if interventions.steering is not None:
        lines.append(steering_name(interventions.steering))
    return lines


def interventions_line(interventions: Interventions) -> str:
    """The interventions for the status line ("ablated L2 H2, L1 MLP; steered at L7 x 4");
    "" for none."""
    parts = [ablation_name(a) for a in interventions.ablations]
    line = f"ablated {', '.join(parts)}" if parts else ""
    s = interventions.steering
    if s is not None:
        line += ("; " if line else "") + f"steered at L{s.layer + 1} x {s.coef:g}"
    return line


def steering_from_texts(
    model: Any, tokenizer: Any, add: str, sub: str, block: str, coef: str
) -> Steering:
    """A steering vector as the dialog gives it: two texts (read as the prompt is read), the
    block counted from 1 and the coefficient, as typed. InputError, one line, for anything the
    model cannot take."""
    try:
        layer = int(block.strip()) - 1
    except ValueError:
        raise InputError(f"block {block!r} is not a whole number") from None
    if not 0 <= layer < model.n_layer:
        raise InputError(f"block {layer + 1}: the model's blocks are 1-{model.n_layer}")
    try:
        value = float(coef.strip())
    except ValueError:
        raise InputError(f"coefficient {coef!r} is not a number") from None
    if not math.isfinite(value):
        raise InputError(f"coefficient {coef!r} is not a finite number")
    add_ids, sub_ids = tuple(tokenizer.encode(add)), tuple(tokenizer.encode(sub))
    if not add_ids or not sub_ids:
        raise InputError("steering needs two texts of at least one token each")
    if max(len(add_ids), len(sub_ids)) > model.n_ctx:
        raise InputError(f"a steering text is longer than the context of {model.n_ctx} tokens")
    return Steering(layer, value, add_ids, sub_ids, add, sub)
