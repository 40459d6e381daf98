"""prompt -> an iterator of `TokenEvent`, one per new token, with what the model thought of it.

The loop: prefill the prompt (reusing whatever prefix the cache already holds), then repeatedly
sample a token, describe it (probability, rank, entropy, top alternatives), yield it, and feed it
back. Closing the iterator stops the work at the next token: that is how a UI cancels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gpt_tui.engine import speculative
from gpt_tui.engine.events import TokenEvent
from gpt_tui.engine.kv_cache import KVCache
from gpt_tui.engine.language_model import LanguageModel
from gpt_tui.engine.sampling import Sampler, SamplingParams, speculation_blocker
from gpt_tui.engine.sampling.dry import dry_breakers
from gpt_tui.engine.scoring import TokenScore, score_rows

if TYPE_CHECKING:
    from gpt_tui.engine.speculative import Drafter, DraftLength, PassStats
    from gpt_tui.tokenizer import Tokenizer


# Bounds on banned strings' rewinds. Each rewind excludes one more token at its position, so a
# ban that most tokens can begin (a single letter, a common word's first letters) could rewind
# thousands of times at one spot; a stress test did 171 rewinds in 2.5 s. Past either bound the
# run stops, cut where the banned string began, with finish reason "rewinds".
MAX_REWINDS_AT_A_POSITION = 16
MAX_REWINDS_PER_RUN = 128


def window_keep(n_ctx: int) -> int:
    """Tokens kept when the window slides: a quarter of the context is freed at once, so the cost
    of rebuilding the cache is paid once per n_ctx/4 tokens, not at every step."""
    return max(1, n_ctx - n_ctx // 4)


def prepare_prompt(
    tokenizer: Tokenizer, prompt: str | Sequence[int], n_ctx: int, allowed_special: str = "none"
) -> tuple[list[int], int]:
    """Prompt ids that fit the context, and how many leading tokens had to be dropped.

    An empty prompt starts from the beginning-of-text token: unconditional generation.
    """
    ids = tokenizer.encode(prompt, allowed_special) if isinstance(prompt, str) else list(prompt)
    if not ids:
        if tokenizer.bos_id is None:
            raise ValueError("the prompt is empty and this model has no beginning-of-text token")
        ids = [tokenizer.bos_id]
    if len(ids) < n_ctx:
        return ids, 0
    keep = window_keep(n_ctx)
    return ids[-keep:], len(ids) - keep


def prefill(
    model: LanguageModel,
    cache: KVCache,
    ids: list[int],
    *,
    tokenizer: Tokenizer | None = None,
    score_n_top: int | None = None,
    first_position: int = 0,
) -> tuple[np.ndarray, list[TokenScore]]:
    """Logits [n_vocab] after `ids`, computing only what the cache does not already hold.

    With `score_n_top` set, also scores each newly computed prompt token under the logits that
    predicted it (those logits are computed anyway; only the output projection is extra).
    """
    scoring = score_n_top is not None and tokenizer is not None
    common = cache.common_prefix(ids)
    # The last token must run for its logits; to score the first new token, so must the one
    # before it (its logits were computed once, but are not kept).
    keep = min(common - 1 if scoring else common, len(ids) - 1)
    keep = max(keep, 0)
    cache.truncate(keep)
    if not scoring:
        return model.forward(ids[keep:], cache, last_only=True)[-1], []
    logits = model.forward(ids[keep:], cache)  # [len(ids) - keep, n_vocab]
    scores = score_rows(
        logits[:-1], ids[keep + 1 :], tokenizer, score_n_top, first_position + keep + 1
    )
    return logits[-1], scores


def generate(
    model: LanguageModel,
    tokenizer: Tokenizer,
    prompt: str | Sequence[int],
    params: SamplingParams | Callable[[], SamplingParams],
    *,
    cache: KVCache | None = None,
    n_top: int = 10,
    allowed_special: str = "none",
    on_prompt_scored: Callable[[list[TokenScore]], None] | None = None,
    drafter: Drafter | None = None,
    on_pass: Callable[[PassStats], None] | None = None,
    draft_length: DraftLength | None = None,
) -> Iterator[TokenEvent]:
    """Yield a `TokenEvent` per new token until max_tokens, end-of-text or a stop string.

    `params` may be a callable returning the current settings: it is read before every token, so
    a change (a slider moved mid-generation) applies from the next token. Pass a `cache` to reuse
    its longest common prefix with the prompt (continue, regenerate, branch) and to keep it
    afterwards. `on_prompt_scored` receives the scores of the prompt tokens the prefill computed.
    With a `drafter`, decoding is speculative (engine/speculative.py): the same tokens and
    events, several per pass when the drafts hold; `on_pass` receives the passes' totals;
    `draft_length` is the policy for how many tokens to draft (default: adaptive). Under
    settings that speculation cannot follow (`speculation_blocker`: banned strings), decoding
    is plain and `on_pass` is not called.
    """
    current = params if callable(params) else (lambda: params)
    ids, dropped = prepare_prompt(tokenizer, prompt, model.n_ctx, allowed_special)
    cache = cache if cache is not None else model.new_cache()
    logits = _prefill_reporting(model, cache, ids, tokenizer, dropped, n_top, on_prompt_scored)
    stream = _Stream(tokenizer, current, ids, len(ids) + dropped, model.n_vocab, n_top)
    stream.rewinds_allowed = True
    if drafter is not None and speculation_blocker(current()) is None:
        yield from speculative.decode(
            model, cache, stream, logits, dropped, drafter, _advance, on_pass, draft_length
        )
        return
    yield from _run_one(model, cache, stream, logits, dropped)


def _prefill_reporting(
    model: LanguageModel,
    cache: KVCache,
    ids: list[int],
    tokenizer: Tokenizer,
    dropped: int,
    n_top: int,
    on_prompt_scored: Callable[[list[TokenScore]], None] | None,
) -> np.ndarray:
    """`prefill`, handing the prompt's scores to `on_prompt_scored` when there is one."""
    logits, scores = prefill(
        model,
        cache,
        ids,
        tokenizer=tokenizer,
        first_position=dropped,
        score_n_top=n_top if on_prompt_scored else None,
    )
    if on_prompt_scored:
        on_prompt_scored(scores)
    return logits


def generate_batch(
    model: LanguageModel,
    tokenizer: Tokenizer,
    prompt: str | Sequence[int],
    params: Sequence[SamplingParams | Callable[[], SamplingParams]],
    *,
    n_top: int = 10,
    allowed_special: str = "none",
    on_prompt_scored: Callable[[list[TokenScore]], None] | None = None,
    first_tokens: Sequence[int] | None = None,
    cache: KVCache | None = None,
) -> Iterator[tuple[int, TokenEvent]]:
    """Several continuations of one prompt at once, each with its own settings.

    Yields (stream index, event). The prompt is computed once; the streams then decode as one
    batch, so each step reads the weights once for all of them: decoding is bound by that read.
    `on_prompt_scored` receives the prompt tokens' scores, as `generate`'s does. There is no
    speculation here: the streams already share each pass, and rows for every stream's drafts
    would make a pass as wide as the drafts times the streams. Nor banned strings: a rewind
    would shorten one stream's rows of the shared cache, which holds one length for all.
    `first_tokens`, one per stream, are taken as each stream's first token instead of a draw
    (expanding a step's alternatives into branches); their events are as a draw's, with the
    token's probability under the stream's sampling distribution. A single-stream `cache`
    lends the prompt's longest prefix it holds (and is left holding the prompt).
    """
    if not 1 <= len(params) <= 8:
        raise ValueError(f"generate_batch takes 1 to 8 streams, not {len(params)}")
    sources = [p if callable(p) else (lambda p=p: p) for p in params]
    if any(source().banned_strings for source in sources):
        raise ValueError(
            "banned strings need one stream at a time (they rewind it); several streams "
            "decoding together cannot apply them: clear the banned strings to compare"
        )
    ids, dropped = prepare_prompt(tokenizer, prompt, model.n_ctx, allowed_special)
    single = cache if cache is not None and cache.n_batch == 1 else model.new_cache()
    logits = _prefill_reporting(model, single, ids, tokenizer, dropped, n_top, on_prompt_scored)
    cache = single.repeat(len(sources))
    streams = [
        _Stream(tokenizer, source, ids, len(ids) + dropped, model.n_vocab, n_top)
        for source in sources
    ]
    if first_tokens is not None:
        if len(first_tokens) != len(streams):
            raise ValueError(f"{len(first_tokens)} first tokens for {len(streams)} streams")
        for stream, token in zip(streams, first_tokens, strict=True):
            stream.forced = int(token)
    batch_logits = np.repeat(logits[None, :], len(streams), axis=0)  # [n_batch, n_vocab]
    yield from _run_streams(model, cache, streams, batch_logits, dropped)


@dataclass(frozen=True, slots=True)
class _Drawn:
    """A drawn token still held back while a banned string may begin in it, with what a
    rewind to it needs: the logits it was drawn from and the sampler as it was before it."""

    event: TokenEvent
    logits: np.ndarray  # [n_vocab]
    sampler: Sampler


class _Stream:
    """One stream's state between steps: sampler, UTF-8 decoder, stop-string hold, settings.

    With banned strings (and `rewinds_allowed`, set by the single-stream loops), drawn tokens
    are held while their text could still begin a banned string; when one completes, the
    stream rewinds to the token where it began, excludes that token at that position and asks
    its loop (`take_rewind`) to drop the undone tokens from the cache and draw there again.
    KoboldCpp's phrase bans work this way, in any case (it lowers both texts before matching:
    gpttype_adapter.cpp's anti-slop detection); the rewind is reported on the event (`rewinds`).
    Past `MAX_REWINDS_AT_A_POSITION` or `MAX_REWINDS_PER_RUN` the stream gives up instead: the
    held text is released up to where the banned string began, finish reason "rewinds".
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        current: Callable[[], SamplingParams],
        prompt_ids: list[int],
        start: int,
        n_vocab: int,
        n_top: int,
    ) -> None:
        self.tokenizer, self.current, self.start, self.n_top = tokenizer, current, start, n_top
        self.sampler = Sampler(n_vocab, prompt_ids, current().seed)
        self.n_vocab = n_vocab
        self.decoder = tokenizer.stream_decoder()
        self.held = StopStringHold()
        self.eos_ids = set(tokenizer.eos_ids)
        self.index = 0
        self.done = False
        self.last_token = prompt_ids[-1]
        self.rewinds_allowed = False
        self.drawn: list[_Drawn] = []  # held back for banned strings, oldest first
        self.excluded: dict[int, set[int]] = {}  # position -> tokens a rewind excluded there
        self.rewound: dict[int, tuple[int, str]] = {}  # position -> (rewinds, text undone)
        self.n_rewinds = 0  # in the whole run, undone ones included
        self._rewind: tuple[int, np.ndarray] | None = None
        self._breakers: tuple[str, ...] | None = None  # the DRY breakers the mask was made for
        self.forced: int | None = None  # the first token, taken instead of drawn

    def take_rewind(self) -> tuple[int, np.ndarray] | None:
        """After a step: None, or (tokens to drop from the end of the cache, the logits to
        step on next) when a banned string made the stream go back."""
        rewind, self._rewind = self._rewind, None
        return rewind

    @property
    def rewinding(self) -> bool:
        return self._rewind is not None

    def step(self, logits: np.ndarray, dropped: int) -> list[TokenEvent]:
        """Sample the next token from logits [n_vocab]; returns the events ready to show."""
        settings = self.current()
        if settings.dry_multiplier > 0.0 and settings.dry_sequence_breakers != self._breakers:
            self._set_dry_breakers(settings.dry_sequence_breakers)
        banning = self.rewinds_allowed and bool(settings.banned_strings)
        before = self.sampler.copy() if banning else None
        position = self.start + self.index
        if self.forced is not None and self.index == 0:
            token = self.forced
            sampled_prob = float(self.sampler.distribution(logits, settings, position)[token])
        else:
            token, sampled_prob = self.sampler.sample(
                logits, settings, position, self.excluded.get(position, ())
            )
        if token in self.eos_ids:
            finish, text = "eos", self.decoder.flush()
        elif self.index + 1 >= settings.max_tokens:
            finish, text = "length", self.decoder.push(token) + self.decoder.flush()
        else:
            finish, text = None, self.decoder.push(token)
        # the model's own view of this step: probability, rank, entropy, alternatives
        (score,) = score_rows(logits[None, :], [token], self.tokenizer, self.n_top)
        rewinds, rewound = self.rewound.get(position, (0, ""))
        event = TokenEvent(
            index=self.index,
            token_id=token,
            text=text,
            prob=score.prob,
            logprob=score.logprob,
            sampled_prob=sampled_prob,
            rank=score.rank,
            entropy=score.entropy,
            top=score.top,
            position=position,
            dropped=dropped,
            finish_reason=finish,
            rewinds=rewinds,
            rewound=rewound,
        )
        self.sampler.observe(token)
        self.last_token = token
        self.index += 1
        if before is not None:
            released = self._hold_for_bans(_Drawn(event, logits, before), settings)
        else:
            released = self._release_drawn() + [event]
        ready: list[TokenEvent] = []
        for e in released:
            out, stopped = self.held.push(e, settings.stop)
            ready += out
            if stopped:
                self.done = True
                self.drawn = []
                return ready
        self.done = bool(released and released[-1].finish_reason)
        return ready

    def _release_drawn(self) -> list[TokenEvent]:
        """Everything held for banned strings (they were cleared): shown as it is."""
        events, self.drawn = [d.event for d in self.drawn], []
        return events

    def _hold_for_bans(self, drawn: _Drawn, settings: SamplingParams) -> list[TokenEvent]:
        """Add a drawn token to the hold; rewind if a banned string completed; release the
        tokens in which no banned string can begin any more."""
        self.drawn.append(drawn)
        written = "".join(d.event.text for d in self.drawn)
        text = fold_case(written)
        bans = tuple(fold_case(b) for b in settings.banned_strings)
        hits = [i for i in (text.find(b) for b in bans) if i >= 0]
        if hits:
            j, start = self._held_at(min(hits))
            count, _ = self.rewound.get(self.drawn[j].event.position, (0, ""))
            if count >= MAX_REWINDS_AT_A_POSITION or self.n_rewinds >= MAX_REWINDS_PER_RUN:
                return self._give_up(j, min(hits) - start)
            self._rewind_to(j, start, written)
            return []
        if drawn.event.finish_reason:
            return self._release_drawn()
        hold = _longest_stop_prefix_suffix(text, bans)
        end, n_ready = 0, 0
        for d in self.drawn:
            end += len(d.event.text)
            if end > len(text) - hold:
                break
            n_ready += 1
        ready, self.drawn = self.drawn[:n_ready], self.drawn[n_ready:]
        return [d.event for d in ready]

    def _held_at(self, hit: int) -> tuple[int, int]:
        """The held token in which the held text's character `hit` is, and where its text
        starts in the held text."""
        start, j = 0, 0
        while j < len(self.drawn) - 1 and start + len(self.drawn[j].event.text) <= hit:
            start += len(self.drawn[j].event.text)
            j += 1
        return j, start

    def _give_up(self, j: int, cut: int) -> list[TokenEvent]:
        """Too many rewinds: release the held tokens before held token j, and j cut where the
        banned string begins in it (`cut` characters kept), as the run's last event."""
        last = self.drawn[j].event
        events = [d.event for d in self.drawn[:j]]
        events.append(dataclasses.replace(last, text=last.text[:cut], finish_reason="rewinds"))
        self.drawn = []
        return events

    def _rewind_to(self, j: int, start: int, text: str) -> None:
        """Go back to held token j, in which a banned string begins (its text at text[start:])."""
        back = self.drawn[j]
        position = back.event.position
        # what was excluded or undone after this position belonged to a text now undone too
        self.excluded = {p: t for p, t in self.excluded.items() if p <= position}
        self.rewound = {p: r for p, r in self.rewound.items() if p <= position}
        self.excluded.setdefault(position, set()).add(back.event.token_id)
        count, _ = self.rewound.get(position, (0, ""))
        self.rewound[position] = (count + 1, text[start:])
        self.n_rewinds += 1
        # the tokens drawn after it were fed to the cache, all but the last one drawn
        self._rewind = (len(self.drawn) - j - 1, back.logits)
        back.sampler.dry_breakers = self.sampler.dry_breakers
        self.sampler = back.sampler
        self.index = back.event.index
        self.drawn = self.drawn[:j]
        self.done = False
        self.decoder = self.tokenizer.stream_decoder()
        # a character may be split across the tokens before it: feed the decoder the last few
        # generated tokens again (a UTF-8 sequence is at most 4 bytes, every token >= 1 byte)
        for token in self.sampler.tokens[self.sampler.n_tokens - min(3, self.index) :]:
            self.decoder.push(int(token))
        self.last_token = int(self.sampler.tokens[-1])

    def _set_dry_breakers(self, breakers: tuple[str, ...]) -> None:
        """DRY's breakers (computed once per set of breakers: a pass over the vocabulary,
        tens of milliseconds)."""
        self.sampler.dry_breakers = dry_breakers(self.tokenizer, self.n_vocab, breakers)
        self._breakers = breakers


def _run_one(
    model: LanguageModel,
    cache: KVCache,
    stream: _Stream,
    logits: np.ndarray,
    dropped: int,
) -> Iterator[TokenEvent]:
    """One stream, plain decoding, rewinding where a banned string asks it to."""
    while True:
        yield from stream.step(logits, dropped)
        if stream.done:
            return
        rewind = stream.take_rewind()
        if rewind is not None:
            n_back, logits = rewind
            cache.truncate(cache.length - n_back)
            dropped = 0
            continue
        logits, dropped = _advance(model, cache, [stream.last_token])
        logits = logits[0]


def _run_streams(
    model: LanguageModel,
    cache: KVCache,
    streams: list[_Stream],
    logits: np.ndarray,
    dropped: int,
) -> Iterator[tuple[int, TokenEvent]]:
    """Step every unfinished stream, then feed all of them their token in one forward pass."""
    while True:
        for i, stream in enumerate(streams):
            if not stream.done:
                for event in stream.step(logits[i], dropped):
                    yield i, event
        if all(stream.done for stream in streams):
            return
        # finished streams still take a row: the step costs the same, bound by the weight read
        logits, dropped = _advance(model, cache, [stream.last_token for stream in streams])


def _advance(model: LanguageModel, cache: KVCache, tokens: list[int]) -> tuple[np.ndarray, int]:
    """Feed one token per stream; when the cache is full, slide the window first.

    Returns the next logits [n_batch, n_vocab] and how many tokens the window slid past.
    """
    new = np.asarray(tokens, dtype=np.int64)[:, None]  # [n_batch, 1]
    n_ctx = min(model.n_ctx, cache.n_ctx)  # a cache may be shorter than the model's context
    if cache.length < n_ctx:
        return model.forward(new, cache, last_only=True)[:, -1], 0
    keep = window_keep(n_ctx) - 1
    context = np.concatenate([cache.ids[:, cache.length - keep : cache.length], new], axis=1)
    dropped = cache.length + 1 - context.shape[1]
    cache.truncate(0)
    return model.forward(context, cache, last_only=True)[:, -1], dropped


def fold_case(text: str) -> str:
    """`text` in lower case, character for character (a character whose lower case is longer,
    as "İ", stays as it is), so that an index into it is one into `text`."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


class StopStringHold:
    """Holds back events while their text could still be the beginning of a stop string.

    Text is released only once no stop string can start inside it; when one completes, the
    events before it are released, the one it starts in is cut where it starts and marked
    "stop", and the tokens that completed it are never shown. With `any_case`, a stop string
    matches in any case (banned strings do).
    """

    def __init__(self, any_case: bool = False) -> None:
        self.pending: list[TokenEvent] = []
        self.any_case = any_case

    def push(self, event: TokenEvent, stops: tuple[str, ...]) -> tuple[list[TokenEvent], bool]:
        """Returns (events ready to show, whether a stop string ended the generation)."""
        self.pending.append(event)
        if not stops:
            return self._release(len(self.pending)), False
        text = "".join(e.text for e in self.pending)
        if self.any_case:
            text, stops = fold_case(text), tuple(fold_case(s) for s in stops)
        hits = [i for i in (text.find(s) for s in stops) if i >= 0]
        if hits:
            return self._cut_at(min(hits)), True
        if event.finish_reason:
            return self._release(len(self.pending)), False
        hold = _longest_stop_prefix_suffix(text, stops)
        start = 0
        n_ready = 0
        for e in self.pending:
            start += len(e.text)
            if start > len(text) - hold:
                break
            n_ready += 1
        return self._release(n_ready), False

    def _release(self, n: int) -> list[TokenEvent]:
        ready, self.pending = self.pending[:n], self.pending[n:]
        return ready

    def _cut_at(self, hit: int) -> list[TokenEvent]:
        ready: list[TokenEvent] = []
        start = 0
        for e in self.pending:
            end = start + len(e.text)
            if end > hit:
                ready.append(
                    dataclasses.replace(e, text=e.text[: hit - start], finish_reason="stop")
                )
                break
            ready.append(e)
            start = end
        self.pending = []
        return ready


def _longest_stop_prefix_suffix(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest end of `text` that is a proper beginning of some stop string."""
    longest = min(len(text), max(len(s) for s in stops) - 1)
    for n in range(longest, 0, -1):
        tail = text[-n:]
        if any(s.startswith(tail) for s in stops):
            return n
    return 0
