"""Waiting for the app's workers in tests (their results arrive as messages)."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.pilot import Pilot


async def wait_until(pilot: Pilot, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Let the app run until `condition()` holds (worker results arrive as messages).

    The deadline only ends a wait for what never comes; it is long because a machine shared by
    other work (a local server answering, a model loading) can take many times its usual time.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        await pilot.pause(0.01)


async def wait_loaded(pilot: Pilot) -> None:
    app = pilot.app
    await wait_until(pilot, lambda: app.core.backend is not None and app.core.state == "idle")
    await pilot.pause()


async def wait_generated(pilot: Pilot) -> None:
    app = pilot.app
    await wait_until(pilot, lambda: app.core.state != "generating")
    await app.workers.wait_for_complete()
    await pilot.pause()


async def generate_from(pilot: Pilot, prompt: str) -> None:
    """Load the model if need be, put `prompt` in the editor, generate, wait for the end."""
    app = pilot.app
    if app.core.backend is None:
        await wait_loaded(pilot)
    app.prompt_editor.load_text(prompt)
    await pilot.press("ctrl+j")
    await wait_generated(pilot)


async def run_compare(pilot: Pilot, prompt: str):
    """Open compare (F4) on `prompt`, run its columns (F5) and wait for the end; the screen."""
    from gpt_tui.tui.screens.compare import CompareScreen

    app = pilot.app
    app.prompt_editor.load_text(prompt)
    await pilot.pause()
    await pilot.press("f4")
    await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen))
    compare = app.screen
    await pilot.press("f5")
    await wait_until(pilot, lambda: not compare.running)
    await app.workers.wait_for_complete()
    return compare


async def sampler_view_of(pilot: Pilot, output, index: int):
    """Select token `index` of `output` (an OutputView), press s, wait for the sampler view."""
    from gpt_tui.tui.screens.sampler_view import SamplerViewScreen

    output.focus()
    output.select(index)
    await pilot.pause()
    await pilot.press("s")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, SamplerViewScreen))
    return pilot.app.screen
