"""How fast the sampler view opens and redraws in the app, as a user waits for it (issue 24:
open <= 0.3 s at 1,000 tokens of context on SmolLM2, a slider move <= 50 ms). A benchmark, not
a test: run it by hand, on a quiet machine.

    GPT_TUI_HOME=... python benchmarks/sampler_view_app.py [WIDTH HEIGHT]

The app (Textual's pilot, headless) reads the README's first 1,000 tokens as a completion
prompt and writes 3 tokens; the view is then opened on the last one four times, and on each
opening temperature is moved four times. The figures are the screen's own (`shown_seconds`):
from the key to the table drawn with the result, so they include the UI's work, not only the
engine's (`benchmarks/sampler_view.py` measures that alone).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

from gpt_tui.engine import SamplingParams
from gpt_tui.settings import UserSettings, save_settings
from gpt_tui.tui.app import GptTuiApp
from gpt_tui.tui.screens.sampler_view import SamplerViewScreen
from gpt_tui.tui.widgets.slider import Slider

N_CONTEXT = 1000


async def wait_for(condition, timeout: float = 30.0) -> None:
    end = time.perf_counter() + timeout
    while not condition() and time.perf_counter() < end:
        await asyncio.sleep(0.002)


async def main() -> None:
    size = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) > 2 else (120, 40)
    save_settings(UserSettings(sampling=SamplingParams(temperature=1.0, seed=1, max_tokens=3)))
    app = GptTuiApp(model="smollm2")
    async with app.run_test(size=size) as pilot:
        await wait_for(lambda: app.core.backend is not None, 120)
        if app.chat_mode:
            await pilot.press("f3")
        tokenizer = app.core.backend.tokenizer
        text = (Path(__file__).resolve().parent.parent / "README.md").read_text() * 3
        app.prompt_editor.load_text(tokenizer.decode(tokenizer.encode(text)[:N_CONTEXT]))
        await pilot.pause()
        await pilot.press("ctrl+j")
        await pilot.pause(1)
        await wait_for(lambda: app.core.state != "generating", 120)
        await app.workers.wait_for_complete()
        opens, moves, steps = [], [], []
        for _ in range(4):
            app.output.focus()
            app.output.select(len(app.output.events) - 1)
            await pilot.pause(0.5)
            await pilot.press("s")
            await wait_for(lambda: isinstance(app.screen, SamplerViewScreen))
            screen = app.screen
            await wait_for(lambda s=screen: s.shown_seconds is not None)
            opens.append(screen.shown_seconds)
            steps.append(screen.lab.seconds)
            screen.query_one("#slider-temperature", Slider).focus()
            await pilot.pause(0.3)
            for key in ("left", "left", "left", "right"):
                screen.shown_seconds = None
                await pilot.press(key)
                await wait_for(lambda s=screen: s.shown_seconds is not None)
                moves.append(screen.shown_seconds)
                await pilot.pause(0.1)
            await pilot.press("escape")
            await pilot.pause(0.3)
        print(f"context {app.status.context[0]} tokens, {size[0]}x{size[1]}")
        print(f"open: median {statistics.median(opens) * 1e3:.0f} ms "
              f"(the step alone {statistics.median(steps) * 1e3:.0f} ms), "
              f"all {[round(x * 1e3) for x in opens]}")  # fmt: skip
        print(f"slider move: median {statistics.median(moves) * 1e3:.0f} ms, "
              f"all {[round(x * 1e3) for x in moves]}")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
