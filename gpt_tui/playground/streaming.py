"""The body of the generation worker: consume the engine's events, hand them to the UI in batches.

A UI refresh per token is too many at 100 tokens/s, so events are collected and posted at most
`MAX_POSTS_PER_SECOND` times a second (the first token at once, so the time to first token shows).
Cancellation is checked after every token: a stop takes effect within one token. No Textual here;
the app passes `post` (thread-safe) and `cancelled`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from gpt_tui.engine import TokenEvent
from gpt_tui.engine.speculative import PassStats

MAX_POSTS_PER_SECOND = 12  # still reads as streaming; each repaint costs the model speed


@dataclass(frozen=True)
class RunStats:
    """Timings of one generation, for the status bar."""

    n_tokens: int = 0
    ttft: float | None = None  # seconds from the request to the first token (includes prefill)
    decode_rate: float | None = None  # tokens/s after the first
    elapsed: float = 0.0
    # speculative decoding's running figures (engine/speculative.py), None when it is off
    tokens_per_pass: float | None = None
    drafts_held: float | None = None  # share of drafted tokens the passes confirmed
    rewinds: int = 0  # draws undone because a banned string began in them (TokenEvent.rewinds)

    @property
    def tokens_per_second(self) -> float | None:
        return self.decode_rate

    def with_passes(self, passes: PassStats | None) -> RunStats:
        """These timings with speculation's totals so far (unchanged without any)."""
        if passes is None or not passes.passes:
            return self
        return dataclasses.replace(
            self, tokens_per_pass=passes.tokens_per_pass, drafts_held=passes.acceptance
        )


class _Batches:
    """Collects streamed items and posts them at most once per `interval` (the first at once),
    keeping the timings of the run: the bookkeeping `stream_events` and `stream_batch` share."""

    def __init__(
        self,
        post: Callable[[list, RunStats], object],
        interval: float,
        clock: Callable[[], float],
    ) -> None:
        self._post, self._interval, self._clock = post, interval, clock
        self.start = clock()
        self.first: float | None = None
        self.last: float | None = None
        self.n = self.n_decoded = 0  # items; items after a stream's first (the decoded ones)
        self.rewinds = 0
        self._items: list = []
        self._last_post = self.start - interval

    def add(self, item: object, decoded: bool) -> None:
        now = self._clock()
        if self.first is None:
            self.first = now
        self.last = now
        self.n += 1
        self.n_decoded += decoded
        self.rewinds += getattr(item, "rewinds", 0)  # a TokenEvent's; a batch's rows carry none
        self._items.append(item)

    def post_if_due(self) -> None:
        if self.last is not None and self.last - self._last_post >= self._interval:
            self.flush()
            self._last_post = self.last

    def flush(self) -> None:
        if self._items:
            self._post(self._items, self.stats())
            self._items = []

    def stats(self) -> RunStats:
        span = self.last - self.first if self.first is not None and self.last is not None else 0.0
        rate = self.n_decoded / span if self.n_decoded and span > 0 else None
        ttft = self.first - self.start if self.first is not None else None
        elapsed = (self.last or self.start) - self.start
        return RunStats(self.n, ttft, rate, elapsed, rewinds=self.rewinds)


def _close(events: Iterator) -> None:
    """Close the engine's generator, so it stops at once (not at garbage collection)."""
    close = getattr(events, "close", None)
    if close is not None:
        close()


def stream_events(
    events: Iterator[TokenEvent],
    post: Callable[[list[TokenEvent], RunStats], object],
    cancelled: Callable[[], bool],
    *,
    interval: float = 1 / MAX_POSTS_PER_SECOND,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[str, RunStats]:
    """Drain `events`, posting them in batches; returns why it stopped and the timings.

    The reason is the last event's `finish_reason`, or "user" when `cancelled()` became true.
    `events` is closed before returning, so the engine stops at once.
    """
    batches = _Batches(post, interval, clock)
    finish = "user"
    try:
        for event in events:
            batches.add(event, decoded=batches.n > 0)
            if event.finish_reason:
                finish = event.finish_reason
                break
            if cancelled():
                break
            batches.post_if_due()
            # Hand the GIL over between tokens: a small model decodes in pure Python for long
            # stretches, and the UI thread would wait up to a switch interval for every step.
            time.sleep(0)
        else:
            if not cancelled():
                finish = "length"  # the engine ended without saying why: treat as a limit
    finally:
        _close(events)
    batches.flush()
    return finish, batches.stats()


class ThreadCounter:
    """How many worker threads are inside `running()`, so quitting can wait for them to end."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        with self._changed:
            self.count += 1
        try:
            yield
        finally:
            with self._changed:
                self.count -= 1
                self._changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until no thread is running (True), or `timeout` seconds pass (False)."""
        with self._changed:
            return self._changed.wait_for(lambda: self.count == 0, timeout=timeout)


def stream_batch(
    events: Iterator[tuple[int, TokenEvent]],
    n_streams: int,
    post: Callable[[list[tuple[int, TokenEvent]], RunStats], object],
    cancelled: Callable[[], bool],
    *,
    interval: float = 1 / MAX_POSTS_PER_SECOND,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[list[str], RunStats]:
    """`stream_events` for `generate_batch`: drain its (stream, event) pairs, posting them in
    batches; returns why each stream stopped and the timings of the whole batch.

    One stream's end does not end the others: the engine returns once all are done. Streams
    still running when `cancelled()` becomes true stop with "user". The stats count the tokens
    of every stream, so their rate is the batch's throughput.
    """
    batches = _Batches(post, interval, clock)
    finishes: list[str | None] = [None] * n_streams
    try:
        for stream, event in events:
            batches.add((stream, event), decoded=event.index > 0)
            if event.finish_reason:
                finishes[stream] = event.finish_reason
            if cancelled():
                break
            batches.post_if_due()
            time.sleep(0)  # hand the GIL to the UI thread between tokens (see stream_events)
        else:
            # the engine ended without saying why for a stream: treat it as a limit
            finishes = [f or ("user" if cancelled() else "length") for f in finishes]
    finally:
        _close(events)
    batches.flush()
    return [f or "user" for f in finishes], batches.stats()
