"""SVG snapshots of the main screen, so layout regressions show (`pytest --snapshot-update` after
a deliberate change). Deterministic: greedy decoding of the tiny model, no timings shown."""

from __future__ import annotations

from textual.pilot import Pilot
from tui_helpers import wait_generated, wait_loaded, wait_until

from gpt_tui.tui.app import GptTuiApp

PROMPT = "The meaning of life is"


async def _ready(pilot: Pilot, generate: bool) -> None:
    app: GptTuiApp = pilot.app  # type: ignore[assignment]
    await wait_loaded(pilot)
    app.prompt_editor.load_text(PROMPT)
    await wait_until(pilot, lambda: "5 tokens" in str(app.query_one("#prompt-info").render()))
    if generate:
        await pilot.press("ctrl+j")
        await wait_generated(pilot)
        app.status.stats = None  # timings differ between runs
    # Focus where no cursor blinks (whether the prompt's cursor is drawn depends on timing).
    app.output.focus()
    app.clear_notifications()
    await pilot.pause()


def test_main_screen_idle(snap_compare, tiny_model_dir, deterministic_settings):
    async def run_before(pilot: Pilot) -> None:
        await _ready(pilot, generate=False)

    app = GptTuiApp(model=tiny_model_dir)
    assert snap_compare(app, terminal_size=(120, 36), run_before=run_before)


def test_main_screen_inspecting_a_token(snap_compare, tiny_model_dir, deterministic_settings):
    async def run_before(pilot: Pilot) -> None:
        await _ready(pilot, generate=True)
        pilot.app.output.focus()
        pilot.app.output.select(5)
        await pilot.pause()

    app = GptTuiApp(model=tiny_model_dir)
    assert snap_compare(app, terminal_size=(120, 36), run_before=run_before)


def test_probability_colouring(snap_compare, tiny_model_dir, deterministic_settings):
    async def run_before(pilot: Pilot) -> None:
        await _ready(pilot, generate=True)
        pilot.app.colouring = "probability"
        pilot.app.output.select(2)
        await pilot.pause()

    app = GptTuiApp(model=tiny_model_dir)
    assert snap_compare(app, terminal_size=(120, 36), run_before=run_before)


def test_rank_colouring_in_a_small_terminal(snap_compare, tiny_model_dir, deterministic_settings):
    async def run_before(pilot: Pilot) -> None:
        await _ready(pilot, generate=True)
        pilot.app.colouring = "rank"
        pilot.app.output.focus()
        pilot.app.output.select(0)
        # The sampling panel folds to one row, and the sidebar shows the whole inspector after
        # the next refresh.
        sidebar, inspector = pilot.app.query_one("#sidebar"), pilot.app.inspector
        await wait_until(
            pilot,
            lambda: (
                pilot.app.sampling_panel.has_class("-folded")
                and inspector.region.bottom <= sidebar.region.bottom
                and sidebar.scroll_y == sidebar.max_scroll_y
            ),
        )
        await pilot.pause()

    app = GptTuiApp(model=tiny_model_dir)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_chat_in_a_small_terminal(snap_compare, tiny_model_dir, deterministic_settings):
    """80x24 in chat mode after a reply: the box above, F1 first in the footer, the status line
    keeping what fits."""

    async def run_before(pilot: Pilot) -> None:
        app: GptTuiApp = pilot.app  # type: ignore[assignment]
        await wait_loaded(pilot)
        await pilot.press("f3")
        app.prompt_editor.load_text("Hello there")
        await pilot.press("ctrl+j")
        await wait_generated(pilot)
        app.status.stats = None  # timings differ between runs
        app.output.focus()
        app.clear_notifications()
        await pilot.pause()

    app = GptTuiApp(model=tiny_model_dir)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
