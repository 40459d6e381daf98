"""Compare columns: several streams at once, their events interleaved as they come."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator

from gpt_tui.engine import TokenEvent

_DONE = object()


def interleave(
    makers: list[Callable[[], Iterator[TokenEvent]]], parallel: int
) -> Iterator[tuple[int, TokenEvent]]:
    """Run each generator in a thread (at most `parallel` at once) and yield (index, event) as
    they come. Closing this iterator tells every thread to stop at its next event."""
    out: queue.Queue = queue.Queue()
    stop = threading.Event()
    slots = threading.Semaphore(max(1, parallel))

    def run(i: int) -> None:
        with slots:
            try:
                if stop.is_set():
                    return
                with contextlib.closing(makers[i]()) as events:
                    for event in events:
                        out.put((i, event))
                        if stop.is_set():
                            return
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
                out.put((i, exc))
            finally:
                out.put((i, _DONE))

    threads = [
        threading.Thread(target=run, args=(i,), daemon=True, name=f"remote-{i}")
        for i in range(len(makers))
    ]
    for t in threads:
        t.start()
    running = len(threads)
    first_error: BaseException | None = None
    try:
        while running:
            i, item = out.get()
            if item is _DONE:
                running -= 1
            elif isinstance(item, BaseException):
                first_error = first_error or item
            else:
                yield i, item
        if first_error is not None:
            raise first_error
    finally:
        stop.set()
