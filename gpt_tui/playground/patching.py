"""Activation patching of two texts, as `gpt-tui patch` (and look inside's patching, later)
asks for it: the texts and tokens checked, engine/interventions.py's sweep, and its JSON."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
    if answer_id == against_id:
        raise InputError(f"--answer and --against are the same token ({answer!r})")
    ids = [tokenizer.encode(text, allowed_special) for text in (clean, corrupt)]
    if not ids[0] or not ids[1]:
        raise InputError("patching needs two non-empty texts")
    if len(ids[0]) != len(ids[1]):
        raise InputError(
            f"patching needs texts of the same token length: CLEAN has {len(ids[0])} tokens, "
            f"CORRUPT {len(ids[1])} ({_pieces(tokenizer, ids[0])} vs {_pieces(tokenizer, ids[1])})"
        )
    if len(ids[0]) > model.n_ctx:
        raise InputError(
            f"the texts have {len(ids[0])} tokens, more than the context of {model.n_ctx}"
        )
    result = patch(model, ids[0], ids[1], answer_id, against_id, progress=progress)
    return PatchReport(
        clean=_tokens(tokenizer, ids[0]),
        corrupt=_tokens(tokenizer, ids[1]),
        answer=Token(answer_id, tokenizer.token_text(answer_id)),
        against=Token(against_id, tokenizer.token_text(against_id)),
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
