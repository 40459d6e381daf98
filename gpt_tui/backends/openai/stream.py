"""One streamed answer -> the engine's `TokenEvent`s.

Each chunk of a stream carries the text it adds and, when asked for, the logprobs of its token(s)
(`logprobs.parse_logprobs`); each token becomes an event whose figures are the server's
(`logprobs.figures`). Stop strings are applied here with the engine's `StopStringHold`, so they
mean the same on every server; the caller closes the stream as soon as one completes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

from gpt_tui.backends.openai.logprobs import PieceLogprob, figures, parse_logprobs
from gpt_tui.backends.openai.vocab import PieceVocabulary
from gpt_tui.engine import SamplingParams, TokenEvent
from gpt_tui.engine.generate import StopStringHold
from gpt_tui.errors import BackendError

#: finish reasons as the engine names them; the server's "stop" is an end of text because stop
#: strings never reach it
FINISH = {"stop": "eos", "length": "length", "eos": "eos"}


class TokenStream:
    """Chunks of one streamed answer -> TokenEvents, through the stop-string hold.

    The newest event waits until the next chunk: only then is it known whether it is the last
    (the finish reason often comes in a chunk of its own)."""

    def __init__(
        self, vocab: PieceVocabulary, params: SamplingParams, n_top: int, start: int, chat: bool,
        on_notice: Callable[[str], None] | None = None,
    ) -> None:  # fmt: skip
        self.vocab, self.params, self.n_top, self.start = vocab, params, n_top, start
        self.chat, self.on_notice = chat, on_notice
        self.hold = StopStringHold()
        self.index = 0
        self.sampled_prob = 1.0 if params.greedy else math.nan
        # where the next token's text should start, by the server's own text offsets
        self.next_offset: int | None = None
        self.lost = 0  # characters the server's offsets count but its streamed text lacks

    def run(self, chunks: Iterator[dict[str, Any]]) -> Iterator[TokenEvent]:
        try:
            yield from self._run(chunks)
        finally:
            if self.lost and self.on_notice is not None:
                self.on_notice(
                    f"the server's streamed text lacks {self.lost} character(s) its token offsets "
                    "count (llama-cpp-python streams characters of several bytes as empty text "
                    "when logprobs are on): the text shown misses them"
                )

    def _run(self, chunks: Iterator[dict[str, Any]]) -> Iterator[TokenEvent]:
        pending: TokenEvent | None = None
        try:
            for chunk in chunks:
                choices = chunk.get("choices")
                if not isinstance(choices, list):
                    raise BackendError("stopped: the server sent an event without choices")
                if not choices:
                    continue  # a usage-only chunk
                choice = choices[0]
                if not isinstance(choice, dict):
                    raise BackendError("stopped: the server sent a malformed choice")
                for event in self._events(choice):
                    if pending is not None:
                        ready, stopped = self.hold.push(pending, self.params.stop)
                        yield from ready
                        if stopped:
                            return
                    pending = event
                finish = choice.get("finish_reason")
                if finish:
                    if pending is not None:
                        last = dataclasses.replace(
                            pending, finish_reason=FINISH.get(str(finish), str(finish))
                        )
                        ready, _ = self.hold.push(last, self.params.stop)
                        yield from ready
                    return
            # [DONE] without a finish reason: an answer ended early (llama-cpp-python does this
            # when another request interrupts it)
            raise BackendError("stopped: the server ended the answer without saying why")
        except BackendError:
            # keep what arrived: the held events are real tokens, shown as they came
            kept = [*self.hold.pending, *([pending] if pending is not None else [])]
            self.hold.pending = []
            pending = None
            yield from kept
            raise

    def _events(self, choice: dict[str, Any]) -> list[TokenEvent]:
        if self.chat:
            delta = choice.get("delta") or {}
            text = delta.get("content") if isinstance(delta, dict) else None
        else:
            text = choice.get("text")
        text = text if isinstance(text, str) else ""
        entries = parse_logprobs(choice.get("logprobs"))
        if not entries:
            if not text:
                return []
            # a server (or chunk) without logprobs: the text is real, its odds unknown
            return [self._unknown(text)]
        texts = _align(text, entries)
        for entry, piece_text in zip(entries, texts, strict=True):
            if entry.offset is not None:
                if self.next_offset is not None and entry.offset > self.next_offset:
                    self.lost += entry.offset - self.next_offset
                self.next_offset = entry.offset + len(piece_text)
        return [
            self._event(entry, piece_text) for entry, piece_text in zip(entries, texts, strict=True)
        ]

    def _event(self, entry: PieceLogprob, text: str) -> TokenEvent:
        f = figures(entry, self.vocab, self.n_top)
        token_id = f.token_id
        if text and not entry.exact and entry.text != text:
            # a server that names tokens by strings only writes "" (or a broken character) for a
            # token holding part of a UTF-8 character; the text it streamed is what it printed,
            # so that is this token's piece: decoding the context then gives the server's text
            token_id = self.vocab.intern(text.encode("utf-8"))
        event = TokenEvent(
            index=self.index,
            token_id=token_id,
            text=text,
            prob=f.prob,
            logprob=f.logprob,
            sampled_prob=self.sampled_prob,
            rank=f.rank,
            entropy=f.entropy,
            top=f.top,
            position=self.start + self.index,
        )
        self.index += 1
        return event

    def _unknown(self, text: str) -> TokenEvent:
        event = TokenEvent(
            index=self.index,
            token_id=self.vocab.intern(text.encode("utf-8")),
            text=text,
            prob=math.nan,
            logprob=math.nan,
            sampled_prob=math.nan,
            rank=0,
            entropy=math.nan,
            top=(),
            position=self.start + self.index,
        )
        self.index += 1
        return event


def _align(text: str, entries: list[PieceLogprob]) -> list[str]:
    """Split a chunk's text among its tokens: each takes its own piece while the text goes on
    with it; the last takes what is left (a server holds back a partial UTF-8 character and
    sends it with a later token)."""
    out = []
    rest = text
    for i, entry in enumerate(entries):
        if i == len(entries) - 1:
            out.append(rest)
        elif entry.text and rest.startswith(entry.text):
            out.append(entry.text)
            rest = rest[len(entry.text) :]
        else:
            out.append("")
    return out
