"""The shared page in headless Chromium: its token count, a hovered token's alternatives, the
colour switch (with and without JavaScript), and how it looks against a reference screenshot."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hand_session import HAND_TOKENS, PROMPT_SCORES
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/browser.py
from browser import chromium, new_page  # noqa: E402

from gpt_tui.playground.session import Session  # noqa: E402
from gpt_tui.playground.session_page import session_page  # noqa: E402
from gpt_tui.playground.token_colours import token_colours  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "session_page.png"
SIZE = (1000, 700)
# How screenshots are compared. Another machine's fonts move and resize every piece of text, so
# pixels cannot be compared one by one. What the page is made of can: each colour it paints
# (token backgrounds, legend, bars; text is grey and left out) covers about as many pixels,
# about where it did; and shrunk SHRINK times, where text is only grey texture, the whole stays
# close. Measured against the reference (Chromium 150, DejaVu fonts): another sans and
# monospace font, or text a pixel larger, changes a colour's area by at most 1.25 times and
# moves it at most 45 px, and the shrunk page by 5 (of 255) on average; losing the token
# colours, the alternatives panel or the two-column layout changes an area 9 times or more or
# moves it 590 px, and a page without its style sheet differs by 11.
COLOUR_CHROMA = 40  # a pixel whose channels differ by more is painted in a colour, not grey
MIN_AREA = 150  # pixels of one colour (in 16 levels a channel) that count as a part of the page
MAX_AREA_RATIO = 2.0
MAX_MOVE = 80  # px, as |dy| + |dx| of the colour's centre
SHRINK = 16
MAX_MEAN_DIFFERENCE = 8.0


@pytest.fixture(scope="module")
def browser():
    """One Chromium for the module (starting one costs seconds); each test opens its own page."""
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser):
    page = new_page(browser, *SIZE)
    yield page
    page.context.close()


@pytest.fixture
def page_file(page_session: Session, tmp_path: Path) -> Path:
    path = tmp_path / "session.html"
    path.write_text(session_page(page_session), encoding="utf-8")
    return path


def _rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


ALL_TOKENS = PROMPT_SCORES + HAND_TOKENS  # the page's spans: the prompt's scored tokens first


def _backgrounds(page) -> list[str]:
    return page.eval_on_selector_all(
        ".tok", "els => els.map(e => getComputedStyle(e).backgroundColor)"
    )


def test_token_count_alternatives_on_hover_and_the_colour_switch(page, page_file: Path) -> None:
    page.goto(page_file.as_uri())
    assert page.locator(".tok.generated").count() == len(HAND_TOKENS)
    assert page.locator(".tok.given").count() == len(PROMPT_SCORES)
    assert page.inner_text("#token-count") == f"{len(HAND_TOKENS)} tokens"

    page.hover(".tok.generated >> nth=4")  # " <script>", which the model ranked 37th
    panel = page.locator("#inspector")
    assert "␣<script>" in panel.locator(".token").inner_text()
    assert "rank 37" in panel.inner_text()
    rows = panel.locator(".alt")
    assert rows.count() == 4
    assert rows.nth(0).inner_text().split() == ["␣is", "50.0%"]
    widths = [rows.nth(i).locator(".bar").bounding_box()["width"] for i in range(4)]
    track = rows.nth(0).locator(".track").bounding_box()["width"]
    assert widths[0] == pytest.approx(track / 2, abs=1) and widths == sorted(widths)[::-1]

    page.hover(".tok.given >> nth=0")  # the prompt's tokens have theirs too
    assert "␣sky" in panel.locator(".token").inner_text() and "rank 14" in panel.inner_text()

    page.click(".tok.generated >> nth=0")  # pinned: hovering another token keeps it
    page.hover(".tok.generated >> nth=5")
    assert "␣blue" in panel.locator(".token").inner_text()

    for mode in ("probability", "rank", "surprisal"):
        page.check(f"#mode-{mode}")
        expected = [_rgb(token_colours(mode, p, r)[1]) for _, p, r, _ in ALL_TOKENS]
        assert _backgrounds(page) == expected
        assert page.is_visible(f".legend-{mode}")


def test_without_javascript_colours_switch_and_titles_tell(browser, page_file: Path) -> None:
    page = new_page(browser, *SIZE, java_script_enabled=False)
    try:
        page.goto(page_file.as_uri())
        assert page.is_hidden("#inspector")
        page.check("#mode-rank")
        assert _backgrounds(page) == [
            _rgb(token_colours("rank", p, r)[1]) for _, p, r, _ in ALL_TOKENS
        ]
        title = page.get_attribute(".tok.generated >> nth=4", "title")
        assert "rank 37" in title and "50%  ␣is" in title
    finally:
        page.context.close()


def _screenshot(page, page_file: Path, *, style: str = "") -> np.ndarray:
    """The page at SIZE with the fifth token hovered; `style` is CSS added to it."""
    page.goto(page_file.as_uri())
    if style:
        page.add_style_tag(content=style)
    page.hover(".tok.generated >> nth=4")
    page.locator("#inspector .alt").first.wait_for(state="attached")
    png = page.screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _colours(image: np.ndarray) -> dict[int, tuple[int, float, float]]:
    """Each colour the page paints (quantised to 16 levels a channel): its area and centre."""
    pixels = image.reshape(-1, 3).astype(np.int32)  # [h*w, 3]
    ys, xs = np.divmod(np.arange(len(pixels)), image.shape[1])
    coloured = pixels.max(axis=1) - pixels.min(axis=1) > COLOUR_CHROMA
    levels = pixels[coloured] // 16
    keys = levels[:, 0] * 256 + levels[:, 1] * 16 + levels[:, 2]
    ys, xs = ys[coloured], xs[coloured]
    found = {}
    for key in np.unique(keys):
        where = keys == key
        if where.sum() >= MIN_AREA:
            found[int(key)] = (int(where.sum()), float(ys[where].mean()), float(xs[where].mean()))
    return found


def _shrunk(image: np.ndarray) -> np.ndarray:
    h, w = (image.shape[0] // SHRINK) * SHRINK, (image.shape[1] // SHRINK) * SHRINK
    blocks = image[:h, :w].astype(np.float32).reshape(h // SHRINK, SHRINK, w // SHRINK, SHRINK, 3)
    return blocks.mean(axis=(1, 3))  # [h/SHRINK, w/SHRINK, 3]


def _mismatch(shot: np.ndarray, reference: np.ndarray) -> str | None:
    """Why `shot` is not the page of `reference` (None: it is, within the tolerances above)."""
    if shot.shape != reference.shape:
        return f"a screenshot of {shot.shape}, not {reference.shape}"
    seen = _colours(shot)
    for key, (area, y, x) in _colours(reference).items():
        colour = f"#{key >> 8:x}0{(key >> 4) & 15:x}0{key & 15:x}0"
        now, now_y, now_x = seen.get(key, (0, y, x))
        if not 1 / MAX_AREA_RATIO <= now / area <= MAX_AREA_RATIO:
            return f"{colour} covers {now} px, not about {area}"
        if abs(now_y - y) + abs(now_x - x) > MAX_MOVE:
            return f"{colour} moved from ({x:.0f}, {y:.0f}) to ({now_x:.0f}, {now_y:.0f})"
    difference = float(np.abs(_shrunk(shot) - _shrunk(reference)).mean())
    if difference > MAX_MEAN_DIFFERENCE:
        return f"the page differs by {difference:.1f} on average, shrunk {SHRINK} times"
    return None


def test_the_page_looks_like_its_reference(page, page_file: Path) -> None:
    shot = _screenshot(page, page_file)
    if os.environ.get("GPT_TUI_UPDATE_REFERENCE"):
        Image.fromarray(shot).save(REFERENCE, optimize=True)
    reference = np.asarray(Image.open(REFERENCE).convert("RGB"))
    assert _mismatch(shot, reference) is None


@pytest.mark.parametrize(
    ("style", "broken"),
    [
        # Other fonts (other metrics, other shapes), or larger, are the same page ...
        (
            "body { font-family: 'Liberation Sans' !important; }"
            "pre.text, code { font-family: 'Liberation Mono' !important; }",
            False,
        ),
        ("body { font-size: 16px !important; } pre.text { font-size: 15px !important; }", False),
        # ... while a page whose colours, inspector or layout are lost is not.
        (".tok { background: none !important; }", True),
        ("#inspector { display: none !important; }", True),
        ("main { display: block !important; }", True),
        ("* { all: revert !important; }", True),
    ],
)
def test_the_tolerance_tells_a_broken_page_from_a_font(
    page, page_file: Path, style: str, broken: bool
) -> None:
    reference = np.asarray(Image.open(REFERENCE).convert("RGB"))
    assert (_mismatch(_screenshot(page, page_file, style=style), reference) is not None) == broken
