"""The user's speculative-decoding setting -> the engine's drafter (engine/speculative.py).

"off" decodes plainly, "lookup" drafts by prompt lookup (no second model), anything else
names a draft model (a catalog name or a path) with the target's tokenizer. Each gives the
same text; only the speed differs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpt_tui.errors import GptTuiError

if TYPE_CHECKING:
    from gpt_tui.engine.speculative import Drafter
    from gpt_tui.models.store import LoadedModel

OFF = "off"
LOOKUP = "lookup"
DEFAULT = LOOKUP
"""On by default: exact (the same text as plain decoding, seed for seed) and, by the measured
draft length, never slower; copying, quoting and editing become several times faster (README,
Speed)."""


class SpeculationError(GptTuiError, ValueError):
    """A speculative-decoding setting that cannot be used with this model."""


def check_choice(text: str) -> str:
    """A setting as typed (stripped; "off" and "lookup" in any case); never empty."""
    choice = text.strip()
    if not choice:
        raise SpeculationError("speculative must be off, lookup or a draft model's name or path")
    return choice.lower() if choice.lower() in (OFF, LOOKUP) else choice


def drafter_for(choice: str, target: LoadedModel, *, download: bool = True) -> Drafter | None:
    """The drafter a setting asks for with this target model (None: plain decoding).

    A draft model is loaded here (it may take seconds; without `download`, a catalog model
    not downloaded yet is refused) and refused unless its tokenizer is exactly the target's.
    """
    from gpt_tui.engine.speculative import DraftModel, PromptLookup, unavailable_reason

    choice = check_choice(choice)
    if choice == OFF:
        return None
    reason = unavailable_reason(target.model)
    if reason:
        raise SpeculationError(reason)
    if choice == LOOKUP:
        return PromptLookup()
    return DraftModel(load_draft(choice, target, download=download).model)


def load_draft(choice: str, target: LoadedModel, *, download: bool = True) -> LoadedModel:
    """The draft model a setting names, refused unless its tokenizer is exactly the target's."""
    from gpt_tui.engine.speculative import check_draft_model
    from gpt_tui.models.store import describe, is_cached, load_model

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
