"""Comparing samples: 2 to 4 continuations of one context, each with its own settings.

The context is captured when a comparison opens (`compare_request`): the prompt in completion
mode, the rendered chat in chat mode, so editing the main view later does not change a
comparison under way. `execute_compare` runs the streams together through the backend's
`generate_batch` (locally: the context computed once, the streams decoded as one batch, reading
the weights once per step for all of them), holding the playground's engine lock so it never
overlaps a run of the main view. Plain Python: the compare screen draws it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from gpt_tui.backends.base import Backend, Request
from gpt_tui.engine import SamplingParams, TokenEvent
from gpt_tui.engine.hooked import Interventions
from gpt_tui.errors import GptTuiError
from gpt_tui.playground.core import Playground
from gpt_tui.playground.events import PromptScored
from gpt_tui.playground.intervention_list import interventions_line
from gpt_tui.playground.streaming import RunStats, stream_batch
from gpt_tui.playground.transcript import Transcript, Turn
from gpt_tui.tokenizer.chat import (
    BASE_MODEL_STOP,
    encode_chat,
    encode_prompt,
    has_chat_template,
)


@dataclass(frozen=True)
class CompareRequest:
    """What the columns continue, fixed when the comparison opens."""

    backend: Backend
    context: list[int]  # token ids every column continues
    display: Transcript  # what each column shows before its tokens (never mutated)
    base: SamplingParams  # the main panel's settings; columns override a few
    n_top: int
    summary: str  # one line describing the context
    extra_stop: tuple[str, ...] = ()  # a base model in chat mode stops at the user's turn
    messages: list[dict[str, str]] | None = None  # the chat the context renders
    #: each column's interventions (`with_and_without`); empty: every column under the core's
    interventions: tuple[Interventions | None, ...] = ()

    @property
    def tokenizer(self):  # noqa: ANN201 - the backend's
        return self.backend.tokenizer

    @property
    def model(self):  # noqa: ANN201 - the local engine's model (look inside)
        return getattr(self.backend, "model", None)

    @property
    def model_name(self) -> str:
        return self.backend.name


@dataclass(frozen=True)
class BatchStreamed:
    run_id: int
    events: list[tuple[int, TokenEvent]]  # (column, token)
    stats: RunStats


@dataclass(frozen=True)
class BatchFinished:
    run_id: int
    finishes: list[str]  # why each column stopped
    stats: RunStats
    error: str | None = None


CompareEvent = BatchStreamed | PromptScored | BatchFinished


def compare_request(
    backend: Backend,
    transcript: Transcript,
    editor_text: str,
    chat: bool,
    base: SamplingParams,
    n_top: int,
) -> CompareRequest:
    """The comparison the main view's state asks for; ValueError if there is nothing to continue.

    Completion: the prompt in the editor (empty: from the beginning-of-text token). Chat: the
    conversation plus the message in the editor; with the editor empty, the context of the last
    reply, so the columns are alternatives to it.
    """
    why_not = backend.capabilities.why_not("batch")
    if why_not:
        raise ValueError(why_not)
    tokenizer = backend.tokenizer
    if not chat:
        context = encode_prompt(tokenizer, editor_text)
        display = Transcript(turns=[Turn("prompt", editor_text), Turn("output")],
                             reply_prefix=context, tokenizer=tokenizer)  # fmt: skip
        shown = _one_line(editor_text) or "(empty: from the beginning-of-text token)"
        summary = f"Prompt · {len(context)} tokens · {shown}"
        return CompareRequest(backend, context, display, base, n_top, summary)
    turns = list(transcript.turns) if transcript.mode == "chat" else []
    if editor_text.strip():
        turns.append(Turn("user", editor_text))
    else:
        while turns and turns[-1].role == "assistant":
            turns.pop()
    if not turns or turns[-1].role != "user":
        raise ValueError("Type a message first: the columns answer it")
    display = Transcript(mode="chat", turns=[*turns, Turn("assistant")], tokenizer=tokenizer)
    messages = display.messages(turns)
    context = encode_chat(tokenizer, messages)
    display.reply_prefix = context  # the ids the columns continue: prompt tokens are drawn
    n_messages = sum(t.role in ("user", "assistant", "system") for t in turns)
    last = _one_line(turns[-1].text)
    plural = "s" if n_messages != 1 else ""
    summary = f"Chat · {n_messages} message{plural}, {len(context)} tokens · last: {last}"
    extra = () if has_chat_template(tokenizer) else (BASE_MODEL_STOP,)
    return CompareRequest(backend, context, display, base, n_top, summary, extra, messages)


def request_from_core(core: Playground, editor_text: str) -> CompareRequest:
    """The comparison the playground's state asks for, with the prompt box's `editor_text`;
    ValueError if there is nothing to continue (PlaygroundError: no model)."""
    return compare_request(core.require_model(), core.transcript, editor_text, core.chat_mode,
                           core.sampling, core.n_top)  # fmt: skip


def with_and_without(request: CompareRequest, interventions: Interventions) -> CompareRequest:
    """Two columns of one prompt: the first without `interventions`, the second with them."""
    summary = f"{request.summary} · 1: without, 2: with {interventions_line(interventions)}"
    return dataclasses.replace(request, interventions=(None, interventions), summary=summary)


def first_difference(a: Sequence[int], b: Sequence[int]) -> int | None:
    """The index of the first token where two outputs differ (one ending first counts), or
    None when they are the same."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def _interleaved(
    batches: list[Iterator[tuple[int, TokenEvent]]], columns: list[list[int]]
) -> Iterator[tuple[int, TokenEvent]]:
    """The events of batches run one step each in turn, their streams numbered as `columns`
    (batch g's stream j is column columns[g][j]): columns under different interventions
    decode side by side, each batch in its own cache."""
    running = dict(enumerate(batches))
    while running:
        for g, batch in list(running.items()):
            try:
                stream, event = next(batch)
            except StopIteration:
                del running[g]
                continue
            yield columns[g][stream], event


def execute_compare(
    core: Playground,
    run_id: int,
    request: CompareRequest,
    params: list[Callable[[], SamplingParams]],
    emit: Callable[[CompareEvent], object],
    cancelled: Callable[[], bool],
) -> BatchFinished:
    """Run the columns (on this thread), handing their events to `emit`; returns (and emits)
    how each finished. A failure ends every column with "error", never raises."""
    n = len(params)
    with core.threads.running(), core.engine_lock:
        if cancelled():
            end = BatchFinished(run_id, ["user"] * n, RunStats())
        else:
            scored = lambda scores: emit(PromptScored(run_id, scores))  # noqa: E731
            # The core's interventions hold for the columns too (the backend applies them),
            # unless the request gives each column its own
            sets = list(request.interventions) or [core.interventions or None] * n
            requests = [Request(request.context, p, request.n_top, request.messages,
                                on_prompt_scored=scored if i == 0 else None,
                                interventions=sets[i])
                        for i, p in enumerate(params)]  # fmt: skip
            # A batch shares one model: a batch per set of interventions, decoded in turn
            groups = [[i for i in range(n) if sets[i] == s] for s in dict.fromkeys(sets)]
            try:
                batches = [request.backend.generate_batch([requests[i] for i in g])
                           for g in groups]  # fmt: skip
                events = batches[0] if len(batches) == 1 else _interleaved(batches, groups)
                post = lambda batch, stats: emit(BatchStreamed(run_id, batch, stats))  # noqa: E731
                finishes, stats = stream_batch(events, n, post, cancelled)
                end = BatchFinished(run_id, finishes, stats)
            except Exception as exc:  # noqa: BLE001 - a failure ends the run, not the app
                error = str(exc) if isinstance(exc, GptTuiError) else f"{type(exc).__name__}: {exc}"
                end = BatchFinished(run_id, ["error"] * n, RunStats(), error)
    emit(end)
    return end


def _one_line(text: str) -> str:
    return " ".join(text.split())
