"""The playground driven through its keys and mouse, on the tiny random GPT-2."""

from __future__ import annotations

from textual.widgets import Input, OptionList
from tui_helpers import wait_generated, wait_loaded, wait_until

from gpt_tui.engine import RANGES, SamplingParams
from gpt_tui.engine.scoring import SCORING_RULE
from gpt_tui.settings import UserSettings, load_settings, save_settings
from gpt_tui.tui.app import GptTuiApp
from gpt_tui.tui.screens.help import HelpScreen
from gpt_tui.tui.widgets.inspector import TokenInspector
from gpt_tui.tui.widgets.legend import ColourLegend
from gpt_tui.tui.widgets.sampling_panel import SLIDERS
from gpt_tui.tui.widgets.slider import Slider
from gpt_tui.tui.widgets.status_bar import StatusBar

SIZE = (120, 40)
WIDE = (180, 40)  # the status line has room for every field (narrower: the least important go)


def notes(app: GptTuiApp) -> list[str]:
    return [n.message for n in app._notifications]


def status_text(app: GptTuiApp) -> str:
    return app.query_one(StatusBar).render().plain


async def type_prompt(pilot, text: str) -> None:
    pilot.app.prompt_editor.load_text(text)
    await pilot.pause()


async def test_generate_streams_tokens_and_says_why(tiny_model_dir, deterministic_settings):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await pilot.click("#prompt")
        await pilot.press(*"Hello", "ctrl+j")
        await wait_generated(pilot)
        assert app.output.token_count == deterministic_settings.max_tokens
        assert app.core.state == "length"
        assert "stopped: max tokens" in status_text(app)
        assert "tok/s" in status_text(app) and "TTFT" in status_text(app)
        assert app.output.text.startswith("Hello")
        # F5 works too, and the same greedy settings give the same text
        first = app.output.text
        await pilot.press("f5")
        await wait_generated(pilot)
        assert app.output.text == first


async def test_empty_and_whitespace_prompts_generate(tiny_model_dir, deterministic_settings):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await pilot.press("ctrl+j")
        await wait_generated(pilot)
        # Generated unconditionally (from <|endoftext|>) until the token limit, and said so.
        n = deterministic_settings.max_tokens
        assert app.output.token_count == n and app.core.state == "length"
        assert "empty prompt" in status_text(app)
        await type_prompt(pilot, "   \n ")
        await pilot.press("ctrl+j")
        await wait_generated(pilot)
        assert app.output.token_count == n and app.core.state == "length"


async def test_an_over_long_prompt_slides_the_window(tiny_model_dir, deterministic_settings):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await type_prompt(pilot, "word " * 10_000)  # a 50,000-character paste
        await wait_until(pilot, lambda: "-token context; the first" in _prompt_info(app))
        await pilot.press("ctrl+j")
        await wait_generated(pilot)
        assert app.core.state == "length"
        assert "prompt too long" in status_text(app)
        assert app.output.token_count == deterministic_settings.max_tokens


def _prompt_info(app: GptTuiApp) -> str:
    return str(app.query_one("#prompt-info").render())


async def test_escape_stops_mid_generation(tiny_model_dir, gpt_tui_home):
    save_settings(UserSettings(sampling=SamplingParams(max_tokens=60000, seed=3)))
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await pilot.press("ctrl+j")
        await wait_until(pilot, lambda: app.output.token_count > 3)
        await pilot.press("escape")
        assert app.core.state == "user"
        await wait_generated(pilot)
        count = app.output.token_count
        await pilot.pause(0.2)
        assert app.output.token_count == count < 60000
        assert "stopped by you" in status_text(app)


async def test_continue_and_regenerate_reuse_the_kv_cache(
    tiny_model_dir, deterministic_settings, monkeypatch
):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await type_prompt(pilot, "The quick brown fox jumps over")
        await pilot.press("ctrl+j")
        await wait_generated(pilot)
        first = app.output.text
        n = app.output.token_count

        model = app.core.backend.model
        calls: list[int] = []
        original = model.forward

        def counting_forward(ids, cache=None, **kwargs):
            calls.append(len(ids))
            return original(ids, cache, **kwargs)

        monkeypatch.setattr(model, "forward", counting_forward)
        await pilot.press("ctrl+r")  # regenerate: the prompt is cached, only its last token runs
        await wait_generated(pilot)
        assert calls[0] == 1
        assert app.output.text == first and app.output.token_count == n

        calls.clear()
        await pilot.press("ctrl+n")  # continue: only the last output token is new to the cache
        await wait_generated(pilot)
        assert calls[0] == 1
        assert app.output.token_count == 2 * n
        assert app.output.text.startswith(first)
        assert len(app.core.transcript.turns) == 2


async def test_every_slider_moves_by_keyboard(tiny_model_dir):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        for spec in SLIDERS:
            slider = app.query_one(f"#slider-{spec.name}", Slider)
            slider.focus()
            before = _setting(app, spec.name)
            at_top = slider.value >= slider.maximum
            await pilot.press("left" if at_top else "right")
            after = _setting(app, spec.name)
            assert (after < before) if at_top else (after > before), spec.name
            await pilot.press("shift+left" if at_top else "shift+right")
            further = _setting(app, spec.name)
            assert abs(further - after) >= abs(after - before), spec.name
            if spec.name != "n_top":
                assert RANGES[spec.name].contains(further), spec.name


async def test_every_slider_moves_by_mouse(tiny_model_dir):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)  # the layout settles (the wide breakpoint applies)
        for spec in SLIDERS:
            selector = f"#slider-{spec.name}"
            slider = app.query_one(selector, Slider)
            before = _setting(app, spec.name)
            track = slider._track_width()
            x = 0 if slider.value > slider.minimum else track - 1
            await pilot.click(selector, offset=(x, 0))
            assert _setting(app, spec.name) != before, spec.name
            # drag to the middle
            await pilot.mouse_down(selector, offset=(x, 0))
            await pilot.hover(selector, offset=(track // 2, 0))
            await pilot.mouse_up(selector, offset=(track // 2, 0))
            assert abs(slider.position_of(slider.value) - 0.5) < 0.1, spec.name
            assert _setting(app, spec.name) == slider.value, spec.name


def _setting(app: GptTuiApp, name: str) -> float:
    return app.core.n_top if name == "n_top" else getattr(app.core.sampling, name)


async def test_a_slider_moved_mid_generation_applies_at_once(tiny_model_dir, gpt_tui_home):
    save_settings(UserSettings(sampling=SamplingParams(max_tokens=60000, seed=3)))
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await pilot.press("ctrl+j")
        await wait_until(pilot, lambda: app.output.token_count > 0)
        # As typing a number and enter does; `pilot.press` would wait for an idle app, and
        # an app receiving tokens is never idle.
        slider = app.query_one("#slider-max_tokens", Slider)
        target = app.output.token_count + 120  # well ahead of the worker
        slider.post_message(Slider.Typed(slider, str(target)))
        await wait_until(pilot, lambda: app.core.sampling.max_tokens == target)
        await wait_generated(pilot)
        assert app.core.state == "length"
        assert app.output.token_count == target


async def test_bad_typed_values_are_refused_with_the_range(tiny_model_dir):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        app.query_one("#slider-temperature", Slider).focus()
        await pilot.press("5", "enter")
        await pilot.pause()
        assert app.core.sampling.temperature == 1.0
        assert any("temperature must be in [0, 2]" in n for n in notes(app))

        app.query_one("#slider-top_p", Slider).focus()
        await pilot.press(*"-nan", "enter")
        await pilot.pause()
        assert any("top_p must be a finite number in (0, 1]" in n for n in notes(app))

        app.query_one("#slider-top_k", Slider).focus()
        await pilot.press(*"12.5", "enter")
        await pilot.pause()
        assert any("top_k must be a whole number" in n for n in notes(app))

        app.query_one("#slider-top_k", Slider).focus()
        await pilot.press(*"40", "enter")
        await pilot.pause()
        assert app.core.sampling.top_k == 40
        assert app.query_one("#slider-top_k", Slider).value == 40

        seed = app.query_one("#seed", Input)
        seed.focus()
        await pilot.press(*"abc", "enter")
        await pilot.pause()
        assert seed.has_class("-invalid")
        assert any("seed must be a whole number" in n for n in notes(app))
        await pilot.press("ctrl+u", *"42", "enter")
        assert app.core.sampling.seed == 42 and not seed.has_class("-invalid")

        stop = app.query_one("#stop", Input)
        stop.focus()
        await pilot.press(*r"\n\n, END", "enter")
        assert app.core.sampling.stop == ("\n\n", "END")


async def test_selecting_a_token_shows_its_alternatives(tiny_model_dir, deterministic_settings):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await type_prompt(pilot, "Hello")
        await pilot.press("ctrl+j")
        await wait_generated(pilot)
        inspector = app.query_one(TokenInspector)
        assert inspector.event is None

        offset = app.output.token_offset(3)
        await pilot.click("#output", offset=offset)
        assert app.output.selected == 3
        assert inspector.event is app.output.events[3]
        options = app.query_one("#alternatives", OptionList)
        assert options.option_count >= app.core.n_top
        chosen = [o for o in options._options if "▶" in str(o.prompt)]
        assert len(chosen) == 1
        assert "entropy" in str(app.query_one("#inspector-summary").render())

        await pilot.press("right")
        assert inspector.event is app.output.events[4]
        await pilot.press("end")
        assert app.output.selected == app.output.token_count - 1
        await pilot.press("home", "left")  # home: the prompt's first token, the document's
        assert app.output.selected is None and app.output.selected_prompt == 0


async def test_keyboard_selection_starts_at_the_end(tiny_model_dir, deterministic_settings):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("ctrl+j")
        await wait_generated(pilot)
        await pilot.press("tab")  # from the prompt to the output
        assert app.focused is app.output
        await pilot.press("left")
        assert app.output.selected == app.output.token_count - 1
        await pilot.press("up")
        assert app.output.selected < app.output.token_count - 1


async def test_colouring_cycles_shows_a_legend_and_persists(tiny_model_dir, gpt_tui_home):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        legend = app.query_one(ColourLegend)
        assert not legend.display
        await pilot.press("f2")
        assert app.output.colouring == "probability" and legend.display
        await pilot.press("f2")
        assert app.output.colouring == "rank" and "top-10" in legend.render().plain
    assert load_settings()[0].ui["colouring"] == "rank"
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        assert app.output.colouring == "rank"


async def test_settings_persist_between_runs(tiny_model_dir, gpt_tui_home):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        app.query_one("#slider-temperature", Slider).focus()
        await pilot.press("left", "left")
    settings, problems = load_settings()
    assert problems == [] and settings.sampling.temperature == 0.9
    assert settings.model == str(tiny_model_dir.resolve())
    app = GptTuiApp()  # no --model: the last one is used
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        assert app.core.backend.path == tiny_model_dir
        assert app.query_one("#slider-temperature", Slider).value == 0.9


async def test_chat_mode_round(tiny_model_dir, deterministic_settings):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        assert not app.chat_mode  # GPT-2 starts in completion mode
        await pilot.press("f3")
        assert app.chat_mode and app.prompt_editor.border_title == "Message"
        await pilot.press("ctrl+j")
        assert any("Type a message first" in n for n in notes(app))
        await type_prompt(pilot, "Hi there")
        await pilot.press("ctrl+j")
        await wait_generated(pilot)
        assert app.prompt_editor.text == ""  # the message was sent
        assert [t.role for t in app.core.transcript.turns] == ["user", "assistant"]
        reply = app.core.transcript.turns[1]
        assert reply.events and app.core.state in ("length", "stop", "eos")
        assert "You\nHi there" in app.output.text

        await type_prompt(pilot, "And again")
        await pilot.press("ctrl+j")
        await wait_generated(pilot)
        assert [t.role for t in app.core.transcript.turns] == ["user", "assistant"] * 2
        app.output.focus()
        await pilot.press("left")
        assert app.query_one(TokenInspector).event is app.core.transcript.turns[3].events[-1]


async def test_command_palette_and_help(tiny_model_dir):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await pilot.press("ctrl+p")
        await pilot.press(*"colouring")
        await wait_until(pilot, lambda: _palette_has(app, "Toggle colouring"))
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.colouring == "probability")

        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        assert "Generate" in app.screen.markdown and "ctrl+j" in app.screen.markdown
        assert SCORING_RULE in app.screen.markdown  # one perplexity rule, said where it is shown
        assert "The sampler view (s)" in app.screen.markdown
        await pilot.press("ctrl+j")  # the app's keys do nothing behind a dialog
        assert app.core.state == "idle"
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


def _palette_has(app: GptTuiApp, text: str) -> bool:
    from textual.command import CommandList

    try:
        commands = app.screen.query_one(CommandList)
    except Exception:
        return False
    return any(text in str(o.prompt) for o in commands._options)


async def test_copy_and_clear_output(tiny_model_dir, deterministic_settings):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await type_prompt(pilot, "Copy me")
        await pilot.press("ctrl+j")
        await wait_generated(pilot)
        app.action_copy_output()
        assert app.clipboard == app.output.text and app.clipboard.startswith("Copy me")
        await pilot.press("ctrl+l")
        assert app.output.token_count == 0 and app.core.transcript.is_empty
        await pilot.press("ctrl+n")
        assert any("Nothing to continue" in n for n in notes(app))


async def speculative_reply(tiny_model_dir, choice: str) -> tuple[list[int], str]:
    """The reply's token ids and the status line after generating with `choice`, typed into
    the sampling panel's speculative field."""
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=WIDE) as pilot:
        await wait_loaded(pilot)
        field = app.query_one("#speculative", Input)
        assert field.value == load_settings()[0].speculative  # "lookup" unless changed
        field.focus()
        await pilot.press("ctrl+u", *choice, "enter")
        assert app.core.speculative == choice
        await type_prompt(pilot, "one two three one two three one two")
        await pilot.press("ctrl+j")
        await wait_generated(pilot)
        return app.core.transcript.reply.token_ids, status_text(app)


async def test_speculation_changes_the_speed_not_the_text(tiny_model_dir, gpt_tui_home):
    save_settings(UserSettings(sampling=SamplingParams(temperature=0.8, seed=2, max_tokens=40)))
    assert load_settings()[0].speculative == "lookup"  # the default
    plain, plain_status = await speculative_reply(tiny_model_dir, "off")
    fast, fast_status = await speculative_reply(tiny_model_dir, "lookup")
    assert fast == plain and len(plain) == 40
    assert "tok/pass" in fast_status and "held" in fast_status
    assert "tok/pass" not in plain_status
    assert load_settings()[0].speculative == "lookup"  # remembered


async def test_an_unusable_draft_model_is_said_and_the_run_decodes_plainly(tiny_model_dir):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        app.set_speculative("355M")  # the palette refuses a draft not downloaded here
        await pilot.pause()
        assert "not downloaded yet" in notes(app)[-1] and app.core.speculative == "lookup"
        # Typed in the panel, it is said when generating.
        field = app.query_one("#speculative", Input)
        field.focus()
        await pilot.press("ctrl+u", *"355M", "enter")
        assert app.core.speculative == "355M" and field.value == "355M"
        await type_prompt(pilot, "Hello")
        await pilot.press("ctrl+j")
        await wait_generated(pilot)
        assert any("draft model 355M is not downloaded yet" in n for n in notes(app))
        assert app.output.token_count > 0 and "tok/pass" not in status_text(app)


async def test_banned_string_rewinds_are_counted_in_the_status_line(tiny_model_dir, gpt_tui_home):
    greedy = SamplingParams(temperature=0.0, seed=1, max_tokens=12)
    save_settings(UserSettings(sampling=greedy))
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=WIDE) as pilot:
        await wait_loaded(pilot)
        await type_prompt(pilot, "Hello")
        await pilot.press("ctrl+j")
        await wait_generated(pilot)
        plain = [e.text for e in app.core.transcript.reply.events]
        assert "rewind" not in status_text(app)
    banned = next(t for t in plain[2:] if t.strip())  # a piece greedy decoding writes
    save_settings(UserSettings(sampling=greedy.replace(banned_strings=(banned,))))
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=WIDE) as pilot:
        await wait_loaded(pilot)
        await type_prompt(pilot, "Hello")
        await pilot.press("ctrl+j")
        await wait_generated(pilot)
        events = app.core.transcript.reply.events
        rewinds = sum(e.rewinds for e in events)
        assert rewinds >= 1 and banned not in "".join(e.text for e in events)
        s = "" if rewinds == 1 else "s"
        assert f"{rewinds} rewind{s} (banned strings)" in status_text(app)
        # the undone text is in the output where it was undone, struck through, not copied
        output = app.output
        lines = [output.render_line(y) for y in range(output.scrollable_content_region.height)]
        struck = "".join(s.text for line in lines for s in line if s.style and s.style.strike)
        assert struck.startswith("⟲") and banned in struck.replace("⟲", "")
        assert "⟲" not in output.text and banned not in output.text
        # the inspector of a token drawn again says so
        index = next(i for i, e in enumerate(events) if e.rewinds)
        output.focus()
        output.select(app.core.transcript.reply_start() + index)
        await pilot.pause()
        summary = str(app.inspector.query_one("#inspector-summary").render())
        assert "rewound once here, undoing" in summary or "times here, undoing" in summary
