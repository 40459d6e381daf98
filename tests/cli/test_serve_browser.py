"""`gpt-tui serve` in a real browser: Chromium opens the page, a prompt is typed, the app
generates, and the browser's terminal shows the tokens and the status line's tokens/s."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/browser.py
from browser import chromium_page, need_chromium  # noqa: E402
from serving import serving  # noqa: E402

from gpt_tui.engine import SamplingParams, generate  # noqa: E402
from gpt_tui.settings import UserSettings, save_settings  # noqa: E402

# textual-serve keeps its xterm.js terminal to itself; catch it as it is assigned to
# `this.terminal`, so that the test reads the screen the browser shows, row by row.
CATCH_TERMINAL = """
Object.defineProperty(Object.prototype, "terminal", {
  configurable: true,
  set(value) {
    Object.defineProperty(this, "terminal",
                          {value, writable: true, configurable: true, enumerable: true});
    if (value && value.buffer) window.gptTuiTerminal = value;
  },
});
window.screenText = () => {
  const t = window.gptTuiTerminal;
  if (!t) return "";
  const buffer = t.buffer.active;
  const rows = [];
  for (let i = 0; i < t.rows; i++) {
    const line = buffer.getLine(buffer.viewportY + i);
    rows.push(line ? line.translateToString(true) : "");
  }
  return rows.join("\\n");
};
window.cellOf = (text) => {  // the middle of the first cell showing `text`, in page pixels
  const t = window.gptTuiTerminal;
  const box = t.element.querySelector(".xterm-screen").getBoundingClientRect();
  for (let i = 0; i < t.rows; i++) {
    const col = t.buffer.active.getLine(t.buffer.active.viewportY + i)
      .translateToString(false).indexOf(text);
    if (col >= 0) return {x: box.left + (col + 0.5) * box.width / t.cols,
                          y: box.top + (i + 0.5) * box.height / t.rows};
  }
  return null;
};
"""
PROMPT = "The sky is"
SAMPLING = SamplingParams(temperature=0.0, seed=1, max_tokens=12)
WAIT_MS = 60_000  # a generous bound for a loaded CI machine; the test waits for text, not time


@pytest.fixture
def served(tiny_model_dir: Path, tmp_path: Path, monkeypatch) -> Iterator[str]:
    """`gpt-tui serve` of the tiny model on a free loopback port, greedy, in a home of its own."""
    need_chromium()
    monkeypatch.setenv("GPT_TUI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GPT_TUI_PLAN", "default")  # measuring the kernel plan is not this test's
    save_settings(UserSettings(sampling=SAMPLING))
    with serving("-m", str(tiny_model_dir), env=dict(os.environ)) as (_, url):
        yield url


def test_the_browser_types_a_prompt_and_sees_tokens_and_speed(
    served: str, tiny_gpt2, gpt2_tokenizer
) -> None:
    expected = "".join(
        e.text for e in generate(tiny_gpt2, gpt2_tokenizer, PROMPT, SAMPLING.replace(max_tokens=4))
    )
    word = max(re.findall(r"\w{3,}", expected), key=len)  # a piece of the output to look for
    with chromium_page(1200, 800) as page:
        page.add_init_script(CATCH_TERMINAL)
        page.goto(served)
        page.wait_for_function("screenText().includes('ready')", timeout=WAIT_MS)
        at = page.evaluate("cellOf('Your prompt')")
        assert at is not None, page.evaluate("screenText()")
        page.mouse.click(at["x"], at["y"])
        page.keyboard.type(PROMPT)
        # Generate only once the whole prompt is in the box: keys typed ahead may not have arrived.
        page.wait_for_function(f"screenText().includes({PROMPT!r})", timeout=WAIT_MS)
        page.keyboard.press("Control+j")
        page.wait_for_function(r"/\d tok\/s/.test(screenText())", timeout=WAIT_MS)
        page.wait_for_function(f"screenText().includes({word!r})", timeout=WAIT_MS)
        screen = page.evaluate("screenText()")
    assert re.search(r"\d+(\.\d)? tok/s", screen), screen
    assert word in screen
