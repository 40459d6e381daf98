"""Look inside one prediction: the report `gpt-tui lens` prints and the app's screen draws.

`look_inside` runs the engine's trace (engine/trace.py) for a position of a context and
gathers what a person reads: the logit lens rows of the token followed, the attention from
that position, and its direct logit attribution (also as logit differences against other
tokens). `report_json` is the CLI's JSON contract (cli/lens.py draws it as tables).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpt_tui.engine import cores
from gpt_tui.engine.kv_cache import KVCache
from gpt_tui.engine.trace import (
    Attribution,
    LensRow,
    Trace,
    attribute,
    holding,
    lens_rows,
    trace,
)
from gpt_tui.errors import InputError


@dataclass(frozen=True)
class Token:
    id: int
    text: str


@dataclass(frozen=True)
class LensReport:
    """What the model did at `position` of `tokens` to predict `target`.

    `rows` are the logit lens rows (stage "block": embeddings and each block's output, the
    last the model's own distribution; stage "attention": inside a block, before its MLP);
    `contrasts` the target's logit difference against each token of `against`.
    """

    tokens: tuple[Token, ...]
    position: int
    target: Token
    rows: tuple[LensRow, ...]
    attention: np.ndarray  # [n_layer, n_head, position + 1]
    attribution: Attribution
    contrasts: tuple[tuple[Token, Attribution], ...] = ()

    @property
    def layers(self) -> tuple[LensRow, ...]:
        """The n_layer + 1 rows after each block (0: the embeddings)."""
        return tuple(r for r in self.rows if r.stage == "block")


def one_token(tokenizer: Any, text: str, what: str = "target") -> int:
    """The id of `text`, which must be exactly one token; else an InputError saying what it
    tokenises to."""
    ids = tokenizer.encode(text, "all")
    if len(ids) == 1:
        return ids[0]
    pieces = " ".join(repr(tokenizer.token_text(i)) for i in ids) or "nothing"
    raise InputError(f"{what} {text!r} is not one token: it tokenises to {len(ids)}: {pieces}")


def look_inside(
    model: Any,
    tokenizer: Any,
    ids: Sequence[int],
    position: int | None = None,
    target: int | None = None,
    against: Sequence[int] = (),
    *,
    n_top: int = 5,
    cache: KVCache | None = None,
) -> LensReport:
    """Trace `position` (default: the last) of context `ids` and follow `target` (default:
    the model's top-1 there) through the layers. `cache` is used when it holds the prefix.

    The trace's single-row products are split between the cores as the model's kernel plan
    says for a decode step (engine/plan), the plan's own choice between them and one core
    included; the rest of the report (float64 attributions, KL) is small and runs on one BLAS
    thread: when another process wants a core, a call split in two waits for its descheduled
    half (measured on a loaded 2-core machine at 1,000 tokens, before the plan: the trace took
    18.3-18.7 s on two BLAS threads, 0.10-0.12 s on one).
    """
    if not ids:
        raise InputError("nothing to look inside: the text is empty")
    position = len(ids) - 1 if position is None else position
    if not 0 <= position < len(ids):
        raise InputError(
            f"position {position} is outside the text: its {len(ids)} tokens are 0-{len(ids) - 1}"
        )
    if position >= model.n_ctx:
        raise InputError(f"position {position} is beyond the model's context of {model.n_ctx}")
    cache = holding(model, ids, position, cache)
    planned = getattr(model, "planned", None)
    if planned is not None:
        cores.activate(planned.tuner.settings)  # as a decode step of this model computes
    t = trace(model, cache, position)
    cores.set_blas_threads(1)  # what BLAS computes besides the weight products is small
    return _report(model, tokenizer, ids, t, target, against, n_top)


def _report(
    model: Any,
    tokenizer: Any,
    ids: Sequence[int],
    t: Trace,
    target: int | None,
    against: Sequence[int],
    n_top: int,
) -> LensReport:
    target = int(np.argmax(t.logits)) if target is None else int(target)
    contrasts = tuple(
        (Token(a, tokenizer.token_text(a)), attribute(model, t, target, a))
        for a in against
        if a != target
    )
    return LensReport(
        tokens=tuple(Token(i, tokenizer.token_text(i)) for i in ids),
        position=t.position,
        target=Token(target, tokenizer.token_text(target)),
        rows=tuple(lens_rows(t, target, tokenizer, n_top)),
        attention=t.attention,
        attribution=attribute(model, t, target),
        contrasts=contrasts,
    )


def report_for_text(
    model: Any,
    tokenizer: Any,
    text: str,
    position: int | None = None,
    target: str | None = None,
    against: Sequence[str] = (),
    *,
    n_top: int = 5,
    allowed_special: str = "none",
) -> LensReport:
    """`look_inside` for a text and tokens given as text (`gpt-tui lens`); InputError for an
    empty text, a position outside it, or a token that is not one."""
    if not text:
        raise InputError("nothing to look inside: the text is empty")
    target_id = one_token(tokenizer, target, "--target") if target is not None else None
    against_ids = [one_token(tokenizer, a, "--against") for a in against]
    ids = tokenizer.encode(text, allowed_special)
    return look_inside(model, tokenizer, ids, position, target_id, against_ids, n_top=n_top)


# --- JSON ----------------------------------------------------------------------------------------


def _row_json(row: LensRow) -> dict[str, Any]:
    s = row.score
    return {
        "layer": row.layer,
        "p_target": s.prob,
        "rank_target": s.rank,
        "entropy": s.entropy,
        "kl": row.kl,
        "top": [{"id": a.token_id, "text": a.text, "p": a.prob} for a in s.top],
    }


def _attribution_json(a: Attribution) -> dict[str, Any]:
    out = {
        "embeddings": a.embeddings,
        "heads": a.heads.tolist(),
        "mlps": a.mlps.tolist(),
        "bias": a.bias,
        "logit": a.logit,
    }
    if a.steering:  # only under a steering vector: what it added, a part of the sum
        out["steering"] = a.steering
    return out


def report_json(report: LensReport) -> dict[str, Any]:
    """The `gpt-tui lens --json` object (the issue's contract, and a few more fields:
    `after_attention` rows, the attribution's `logit`, `against` logit differences)."""
    out: dict[str, Any] = {
        "tokens": [{"id": t.id, "text": t.text} for t in report.tokens],
        "position": report.position,
        "target": {"id": report.target.id, "text": report.target.text},
        "layers": [_row_json(r) for r in report.layers],
        "attention": report.attention.tolist(),
        "attribution": _attribution_json(report.attribution),
        "after_attention": [_row_json(r) for r in report.rows if r.stage == "attention"],
    }
    if report.contrasts:
        out["against"] = [
            {"id": token.id, "text": token.text, "logit_difference": _attribution_json(a)}
            for token, a in report.contrasts
        ]
    return out


def layer_name(row: LensRow) -> str:
    if row.layer == 0:
        return "embed"
    return f"{row.layer}·attn" if row.stage == "attention" else str(row.layer)


def contributions(a: Attribution) -> list[tuple[str, float]]:
    """Every part of an attribution by name: "embeddings", "L3 H5" (block 3's head 5, both
    counted from 1, as the lens counts blocks), "L3 MLP", "bias", and "steering" under a
    steering vector."""
    parts = [("embeddings", a.embeddings), ("bias", a.bias)]
    if a.steering:
        parts.append(("steering", a.steering))
    n_layer, n_head = a.heads.shape
    for layer in range(n_layer):
        parts += [(f"L{layer + 1} H{h + 1}", float(a.heads[layer, h])) for h in range(n_head)]
        parts.append((f"L{layer + 1} MLP", float(a.mlps[layer])))
    return parts
