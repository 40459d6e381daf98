"""A newcomer's first minutes, at 80x24: nothing lost on F3, typing goes where the mode is, the
footer and status line keep what matters (issue 23)."""

from __future__ import annotations

from textual.widgets import TextArea
from textual.widgets._footer import FooterKey
from tui_helpers import generate_from, wait_generated, wait_loaded, wait_until

from gpt_tui.settings import load_settings
from gpt_tui.tui.app import GptTuiApp
from gpt_tui.tui.commands import PlaygroundCommands
from gpt_tui.tui.screens.compare import CompareScreen
from gpt_tui.tui.widgets.prompt_editor import PromptEditor

SMALL = (80, 24)


def notes(app: GptTuiApp) -> list[str]:
    return [n.message for n in app._notifications]


def footer_keys(app: GptTuiApp) -> dict[str, str]:
    """What the footer shows: key -> label."""
    return {key.key_display: key.description for key in app.screen.query(FooterKey)}


def status_text(app: GptTuiApp) -> str:
    return app.status.render().plain


async def test_f3_keeps_each_modes_transcript_and_says_so(tiny_model_dir, deterministic_settings):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SMALL) as pilot:
        await wait_loaded(pilot)
        await generate_from(pilot, "Once upon a time")
        completion = app.output.text
        assert completion.startswith("Once upon a time") and app.output.token_count > 0

        await pilot.press("f3")  # to chat: a chat of its own, the completion put aside
        assert app.chat_mode and app.core.transcript.is_empty
        assert "the completion is kept: F3 brings it back" in notes(app)[-1]
        assert "above" in notes(app)[-1]  # the message box is above the output
        assert app.prompt_editor.text == ""
        await generate_from(pilot, "Hi there")
        chat = app.output.text
        assert "Hi there" in chat

        await pilot.press("f3")  # back: the completion as it was, prompt box included
        assert not app.chat_mode
        assert app.output.text == completion and app.prompt_editor.text == "Once upon a time"
        assert "the chat is kept" in notes(app)[-1]
        await pilot.press("f3")
        assert app.chat_mode and app.output.text == chat


async def test_after_f3_typing_goes_to_the_box_and_an_empty_prompt_is_said(
    tiny_model_dir, deterministic_settings
):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SMALL) as pilot:
        await wait_loaded(pilot)
        app.output.focus()
        await pilot.press("f3")
        assert isinstance(app.focused, TextArea) and app.focused.parent is app.prompt_editor
        await pilot.press(*"Hi")
        assert app.prompt_editor.text == "Hi"
        await pilot.press("f3")  # completion: its box is empty
        assert isinstance(app.focused, TextArea)
        await pilot.press("ctrl+j")
        await wait_generated(pilot)
        assert app.output.token_count > 0
        assert "generating from an empty prompt" in status_text(app)  # at 80 columns too


async def test_at_80_columns_the_footer_shows_f1_and_the_main_keys(
    tiny_model_dir, deterministic_settings
):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SMALL) as pilot:
        await wait_loaded(pilot)
        await pilot.pause()
        keys = footer_keys(app)
        for key in ("f1", "^j", "^o", "f2", "f3", "f4"):
            assert key in keys, keys
        assert keys["f1"] == "Help" and keys["f3"] and keys["f4"] == "Compare"
        assert "esc" not in keys  # nothing to stop
        # Every key shown fits in the line: none is cut at the right edge.
        for key in app.screen.query(FooterKey):
            assert key.region.right <= SMALL[0], (key.key_display, key.region)
        await pilot.press("ctrl+j")
        await pilot.pause()
        assert "esc" in footer_keys(app) or app.core.state != "generating"
        await wait_generated(pilot)


async def test_at_80_columns_the_status_line_drops_its_least_important_fields(
    tiny_model_dir, deterministic_settings
):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SMALL) as pilot:
        await generate_from(pilot, "The meaning of life is")
        status = status_text(app)
        assert app.status.size.width == 80 and len(status) <= 80
        assert status.lstrip().startswith(app.core.backend.name)
        assert "stopped: max tokens" in status and "completion" in status and "ctx " in status
        assert app.status.stats is not None and "TTFT" not in status  # it gave way first


async def test_the_prompt_box_counts_with_the_core(tiny_model_dir, deterministic_settings):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SMALL) as pilot:
        await wait_loaded(pilot)
        editor = app.query_one(PromptEditor)
        editor.load_text("Hello world")
        info = editor.query_one("#prompt-info")
        await wait_until(pilot, lambda: "2 tokens" in str(info.render()))


async def test_one_context_count_in_chat(tiny_model_dir, deterministic_settings):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SMALL) as pilot:
        await wait_loaded(pilot)
        await pilot.press("f3")
        await generate_from(pilot, "Hi there")
        app.prompt_editor.load_text("And again")
        info = app.prompt_editor.query_one("#prompt-info")
        n = len(app.core.backend.tokenizer.encode("And again"))
        await wait_until(pilot, lambda: f"message {n} tokens" in str(info.render()))
        # The box counts its own tokens; the status line alone says how full the context is.
        assert "context" not in str(info.render())
        used, n_ctx = app.core.context_used()
        assert status_text(app).count("ctx ") == 1 and f"ctx {used}/{n_ctx}" in status_text(app)


async def test_the_palette_offers_only_drafts_that_can_work(tiny_model_dir, deterministic_settings):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SMALL) as pilot:
        await wait_loaded(pilot)
        provider = PlaygroundCommands(app.screen)
        offered = [str(hit.text) async for hit in provider.discover()]
        assert "Speculative decoding: prompt lookup" in offered
        assert "Speculative decoding: draft with 124M" not in offered  # not downloaded here
        before = app.core.speculative
        app.set_speculative("124M")  # (a palette left open from before, say)
        await pilot.pause()
        assert app.core.speculative == before
        assert "not downloaded yet" in notes(app)[-1]
        assert load_settings()[0].speculative == before  # nothing saved


async def test_a_first_start_says_it_measures_the_plan(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("GPT_TUI_PLAN", "measure")  # the fixtures' "default" measures nothing
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SMALL) as pilot:
        measuring = f"measuring how this machine runs {tiny_model_dir.name} fastest, once"
        assert measuring in app.status.loading_text  # what the status says while it loads
        assert not app.status.loading  # (Textual's spinner, which would hide the status line)
        if app.core.state == "loading":  # (a fast machine may be done already)
            assert measuring in status_text(app)
        await wait_loaded(pilot)
        assert not app.download_panel.display  # no bar left at 100%
    # (Whether it measured depends on this process's cache of loaded models: see conftest.)


async def test_the_app_opens_in_the_mode_the_model_will_use(gpt_tui_home):
    chat = GptTuiApp(model="smollm2")  # an instruct model: chat from the first frame
    async with chat.run_test(size=SMALL):
        assert chat.chat_mode and chat.prompt_editor.border_title == "Message"
    base = GptTuiApp(model="124M")  # GPT-2: completion (it asks to download first)
    async with base.run_test(size=SMALL) as pilot:
        await pilot.pause()
        assert not base.chat_mode and base.prompt_editor.border_title == "Prompt"


async def test_at_80x24_an_inspected_token_leaves_both_panels_readable(
    tiny_model_dir, deterministic_settings
):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SMALL) as pilot:
        await generate_from(pilot, "The meaning of life is")
        app.output.focus()
        app.output.select_prompt(2)  # a prompt token: the longest summary
        sidebar, panel, inspector = app.query_one("#sidebar"), app.sampling_panel, app.inspector
        await wait_until(pilot, lambda: inspector.region.bottom <= sidebar.region.bottom)
        await pilot.pause()
        # The sampling panel keeps its title and first row in sight; the inspector is whole.
        assert panel.region.y == sidebar.region.y and panel.region.height >= 3
        assert inspector.region.y >= sidebar.region.y
        assert inspector.region.bottom <= sidebar.region.bottom
        # Its summary breaks between figures, never inside one.
        summary = inspector.query_one("#inspector-summary")
        lines = str(summary.render()).split("\n")
        assert all(len(line) <= summary.size.width for line in lines), lines
        assert any(line.startswith("log p ") for line in lines), lines
        assert any("surprisal " in line and " bits" in line for line in lines), lines
        await pilot.click("#slider-temperature")  # into the sampling panel: it unfolds
        await pilot.pause()
        assert panel.has_focus_within and panel.region.height > 3, app.focused


async def test_compare_with_4_columns_at_80_columns_pages_them(
    tiny_model_dir, deterministic_settings
):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SMALL) as pilot:
        await wait_loaded(pilot)
        app.prompt_editor.load_text("The meaning of life is")
        await pilot.press("f4")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen))
        screen = app.screen
        await pilot.press("plus")  # a fourth column: shown, with the one beside it
        await pilot.pause()
        columns = screen.columns
        assert len(columns) == 4
        assert [c.display for c in columns] == [False, False, True, True]
        assert all(c.region.width >= 36 for c in columns if c.display)
        for column in columns[2:]:  # its title is whole: "3 · temp 1.2 · seed 3"
            title = str(column.output.border_title)
            assert "seed" in title and column.region.width > len(title) + 4
        assert "columns 3–4 of 4" in screen.status.render().plain
        await pilot.press("1")  # column 1 comes into view, focused
        await pilot.pause()
        assert [c.display for c in columns] == [True, True, False, False]
        assert columns[0].output.has_focus
        await pilot.press("f5")  # every column runs, shown or not
        await wait_until(pilot, lambda: not screen.running)
        assert all(c.output.token_count > 0 for c in columns)
        await pilot.press("4")
        await pilot.pause()
        assert [c.display for c in columns] == [False, False, True, True]


async def test_at_80_columns_the_hint_is_whole_and_says_above(
    tiny_model_dir, deterministic_settings
):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SMALL) as pilot:
        await wait_loaded(pilot)
        await pilot.press("f3")
        await pilot.pause()
        shown = " ".join(app.output.render_line(y).text.strip() for y in range(4)).split()
        assert " ".join(shown) == "Type a message above and press ctrl+j (or F5) to send it."


async def test_an_empty_prompt_box_does_not_read_as_a_prompt(
    tiny_model_dir, deterministic_settings
):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SMALL) as pilot:
        await wait_loaded(pilot)
        area = app.prompt_editor.query_one(TextArea)
        assert area.text == "" and "Your prompt, e.g." in str(area.placeholder)
