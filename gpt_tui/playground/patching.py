"""Activation patching of two texts, as `gpt-tui patch` and look inside's patching tab ask
for it: the texts and tokens checked, engine/interventions.py's sweep, and its JSON."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpt_tui.engine.interventions import Patching, Progress, patch
from gpt_tui.errors import InputError
from gpt_tui.playground.look_inside import Token, one_token


@dataclass(frozen=True)
class PatchReport:
    """A sweep's results, with the tokens they are about."""

    clean: tuple[Token, ...]
    corrupt: tuple[Token, ...]
    answer: Token
    against: Token
    patching: Patching


def patch_texts(
    model: Any,
    tokenizer: Any,
    clean: str,
    corrupt: str,
    answer: str,
    against: str,
    *,
    allowed_special: str = "none",
    progress: Progress | None = None,
) -> PatchReport:
    """Patch from `clean` into `corrupt`, measured by the logit of `answer` minus `against`
    (each a text that is one token) after the last token. InputError for an empty text, texts
    of different token lengths or longer than the context, or a token that is not one."""
    answer_id = one_token(tokenizer, answer, "--answer")
    against_id = one_token(tokenizer, against, "--against")
    ids = [tokenizer.encode(text, allowed_special) for text in (clean, corrupt)]
    return patch_ids(model, tokenizer, ids[0], ids[1], answer_id, against_id, progress=progress)


def patch_ids(
    model: Any,
    tokenizer: Any,
    clean: Sequence[int],
    corrupt: Sequence[int],
    answer: int | None = None,
    against: int | None = None,
    *,
    progress: Progress | None = None,
) -> PatchReport:
    """Patch from token ids `clean` into `corrupt`; `answer` defaults to the model's top next
    token after clean, `against` to its top after corrupt (look inside's defaults). InputError
    for an empty text, texts of different token lengths or longer than the context, or the
    same token twice."""
    if not clean or not corrupt:
        raise InputError("patching needs two non-empty texts")
    if len(clean) != len(corrupt):
        raise InputError(
            f"patching needs texts of the same token length: CLEAN has {len(clean)} tokens, "
            f"CORRUPT {len(corrupt)} ({_pieces(tokenizer, clean)} vs {_pieces(tokenizer, corrupt)})"
        )
    if len(clean) > model.n_ctx:
        raise InputError(
            f"the texts have {len(clean)} tokens, more than the context of {model.n_ctx}"
        )
    if answer is None:
        answer = int(np.argmax(model.forward(list(clean), last_only=True)[-1]))
    if against is None:
        against = int(np.argmax(model.forward(list(corrupt), last_only=True)[-1]))
    if answer == against:
        text = tokenizer.token_text(answer)
        raise InputError(f"the answer and the alternative are the same token ({text!r})")
    result = patch(model, clean, corrupt, answer, against, progress=progress)
    return PatchReport(
        clean=_tokens(tokenizer, clean),
        corrupt=_tokens(tokenizer, corrupt),
        answer=Token(answer, tokenizer.token_text(answer)),
        against=Token(against, tokenizer.token_text(against)),
        patching=result,
    )


def patch_json(report: PatchReport) -> dict[str, Any]:
    """The `gpt-tui patch --json` object: issue 25's fields (`clean`, `corrupted`, `resid_pre`
    [n_layer][n_tokens], `heads` [n_layer][n_head], `mlps` [n_layer]), then the tokens."""
    p = report.patching
    return {
        "clean": p.clean,
        "corrupted": p.corrupted,
        "resid_pre": p.resid_pre.tolist(),
        "heads": p.heads.tolist(),
        "mlps": p.mlps.tolist(),
        "answer": {"id": report.answer.id, "text": report.answer.text},
        "against": {"id": report.against.id, "text": report.against.text},
        "clean_tokens": [{"id": t.id, "text": t.text} for t in report.clean],
        "corrupt_tokens": [{"id": t.id, "text": t.text} for t in report.corrupt],
    }


def _tokens(tokenizer: Any, ids: Sequence[int]) -> tuple[Token, ...]:
    return tuple(Token(i, tokenizer.token_text(i)) for i in ids)


def _pieces(tokenizer: Any, ids: Sequence[int]) -> str:
    return "|".join(tokenizer.token_text(i) for i in ids)
