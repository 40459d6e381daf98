"""Drafts for speculative decoding: the user's setting (settings.py's vocabulary) -> the engine's
drafter (engine/speculative.py), loading a draft model the way the local backend loads any.

A draft model is refused unless its tokenizer is exactly the target's: speculation must give the
same text as plain decoding, only faster.
"""

from __future__ import annotations

from gpt_tui.engine.speculative import (
    Drafter,
    DraftModel,
    PromptLookup,
    check_draft_model,
    unavailable_reason,
)
from gpt_tui.errors import GptTuiError, SpeculationError
from gpt_tui.models.availability import is_cached
from gpt_tui.models.loading import LoadedModel, load_model
from gpt_tui.models.names import describe
from gpt_tui.settings import SPECULATIVE_LOOKUP, SPECULATIVE_OFF, check_speculative


def drafter_for(choice: str, target: LoadedModel, *, download: bool = True) -> Drafter | None:
    """The drafter a setting asks for with this target model (None: plain decoding).

    A draft model is loaded here (it may take seconds; without `download`, a catalog model
    not downloaded yet is refused) and refused unless its tokenizer is exactly the target's.
    """
    choice = check_speculative(choice)
    if choice == SPECULATIVE_OFF:
        return None
    reason = unavailable_reason(target.model)
    if reason:
        raise SpeculationError(reason)
    if choice == SPECULATIVE_LOOKUP:
        return PromptLookup()
    return DraftModel(load_draft(choice, target, download=download).model)


def load_draft(choice: str, target: LoadedModel, *, download: bool = True) -> LoadedModel:
    """The draft model a setting names, refused unless its tokenizer is exactly the target's."""
    if not download:
        try:
            ref = describe(choice)  # a catalog name, a Hugging Face repo id, or a path
        except GptTuiError:
            ref = None  # load_model below says what is wrong with it
        if ref is not None and ref.kind != "path" and not is_cached(choice):
            how = f"`gpt-tui download {ref.name}`, or " if ref.kind == "catalog" else ""
            raise SpeculationError(
                f"the draft model {ref.name} is not downloaded yet ({how}pick it once with ctrl+o)"
            )

    try:
        draft = load_model(choice)
    except GptTuiError as exc:
        raise SpeculationError(f"the draft model {choice}: {exc}") from exc
    try:
        check_draft_model(
            target.name, target.model, target.tokenizer, draft.name, draft.model, draft.tokenizer
        )
    except ValueError as exc:
        raise SpeculationError(str(exc)) from exc
    return draft
