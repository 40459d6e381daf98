"""Saving the playground (ctrl+s) and reopening it (`gpt-tui --open`, or from the palette)."""

from __future__ import annotations

import json

import pytest
from textual.widgets import Input
from tui_helpers import wait_generated, wait_loaded, wait_until

from gpt_tui.errors import SessionFileError
from gpt_tui.playground.session import Session, event_to_json, load, save, to_json
from gpt_tui.playground.session_files import session_paths
from gpt_tui.tui.app import GptTuiApp
from gpt_tui.tui.screens.session_path import SessionPathScreen

SIZE = (120, 40)


def notes(app: GptTuiApp) -> list[str]:
    return [n.message for n in app._notifications]


def as_json(session) -> str:
    # NaN (a picked token's sampling probability) is not equal to itself: compare the text.
    return json.dumps(to_json(session), sort_keys=True)


def events_json(events) -> str:
    return json.dumps([event_to_json(e) for e in events])


async def branched_session(pilot) -> None:
    """Generate, then branch at token 3 on the second alternative."""
    app: GptTuiApp = pilot.app
    await wait_loaded(pilot)
    app.prompt_editor.load_text("The sky is")
    await pilot.press("ctrl+j")
    await wait_generated(pilot)
    app.output.focus()
    app.output.select(3)
    await pilot.pause()
    await pilot.press("2", "enter")
    await wait_generated(pilot)


async def path_dialog(pilot) -> Input:
    """The session path dialog, once it is up."""
    app = pilot.app
    await wait_until(
        pilot, lambda: isinstance(app.screen, SessionPathScreen) and app.screen.query(Input)
    )
    return app.screen.query_one(Input)


async def save_with_keys(pilot, path) -> None:
    await pilot.press("ctrl+s")
    await path_dialog(pilot)
    pilot.app.screen.query_one(Input).value = str(path)
    await pilot.press("enter")
    await pilot.pause()


async def test_save_writes_json_that_reloads_equal_and_markdown(
    tiny_model_dir, deterministic_settings, tmp_path
):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await branched_session(pilot)
        await save_with_keys(pilot, tmp_path / "loom")  # ".json" is added
        path = tmp_path / "loom.json"
        assert path.is_file() and (tmp_path / "loom.md").is_file()
        assert "Session saved" in [n.title for n in app._notifications]
        saved = load(path)
        assert as_json(saved) == as_json(app.current_session())
        assert saved.model == str(tiny_model_dir) and saved.prompt == "The sky is"
        assert len(saved.tree.leaves()) == 2
        assert events_json(saved.tree.events()) == events_json(app.output.events)
        assert saved.prompt_scores == app.core.transcript.prompt_scores
        assert "## Other branches" in (tmp_path / "loom.md").read_text()
        # Saving again offers the same file.
        await pilot.press("ctrl+s")
        assert (await path_dialog(pilot)).value == str(path)
        assert "replaces it" in str(app.screen.query_one("#session-path-note").render())
        await pilot.press("escape")


async def test_open_restores_text_tree_branch_and_settings(
    tiny_model_dir, deterministic_settings, tmp_path
):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await branched_session(pilot)
        app.prompt_editor.load_text("an edit not yet generated from")
        path = app.save_session(tmp_path / "s.json")
        text, events = app.output.text, list(app.output.events)
        saved = as_json(app.current_session())

    reopened = GptTuiApp(session=path)  # the model comes from the file
    async with reopened.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        assert reopened.core.model_name == str(tiny_model_dir)
        assert reopened.output.text == text
        assert events_json(reopened.output.events) == events_json(events)
        assert reopened.prompt_editor.text == "an edit not yet generated from"
        assert reopened.core.sampling == deterministic_settings
        assert as_json(reopened.current_session()) == saved
        assert reopened.branch_view.display
        assert (
            reopened.core.transcript.tokenizer is reopened.core.backend.tokenizer
        )  # ids usable again
        # Branches still switch, and continuing goes on from the saved tokens.
        reopened.output.focus()
        reopened.output.select(3)
        await pilot.press("left_square_bracket")
        await pilot.pause()
        assert reopened.output.text != text
        n = len(reopened.output.events)
        await pilot.press("ctrl+n")
        await wait_generated(pilot)
        assert len(reopened.output.events) > n
        assert len(reopened.core.transcript.turns) == 2  # the same reply, not a new turn


async def test_chat_session_round_trip(tiny_model_dir, deterministic_settings, tmp_path):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await pilot.press("f3")
        for message in ("Hello", "Again"):
            app.prompt_editor.load_text(message)
            await pilot.press("ctrl+j")
            await wait_generated(pilot)
        path = app.save_session(tmp_path / "chat.json")
        text, messages = app.output.text, app.core.transcript.messages()
        events = list(app.output.events)

    saved = load(path)
    assert saved.chat == messages[:-1]  # the messages before the reply; the reply is the tree
    reopened = GptTuiApp(session=path)
    async with reopened.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await pilot.pause()
        assert reopened.chat_mode
        assert reopened.output.text == text
        assert events_json(reopened.output.events) == events_json(events)
        assert reopened.core.transcript.messages() == messages


async def test_a_save_that_fails_is_a_notification_and_loses_nothing(
    tiny_model_dir, deterministic_settings, tmp_path
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await branched_session(pilot)
        text = app.output.text
        await save_with_keys(pilot, blocker / "session.json")
        assert "cannot save the session" in notes(app)[-1]
        assert app.output.text == text and len(app.core.transcript.reply.tree.leaves()) == 2
        assert not isinstance(app.screen, SessionPathScreen)


async def test_a_damaged_or_newer_file_is_refused_clearly(tiny_model_dir, tmp_path):
    damaged = tmp_path / "damaged.json"
    damaged.write_text('{"format": "gpt-tui-session", "version": 1, "tree": ')
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({"format": "gpt-tui-session", "version": 99}))
    with pytest.raises(SessionFileError, match="damaged"):
        GptTuiApp(session=damaged)
    with pytest.raises(SessionFileError, match="newer gpt-tui"):
        GptTuiApp(session=newer)
    # The app's own part of the file, damaged: refused as clearly.
    odd = to_json(Session(model="tiny", prompt="hi", extra={"turns": [{"role": "wizard"}]}))
    (tmp_path / "odd.json").write_text(json.dumps(odd))
    with pytest.raises(SessionFileError, match="odd.json is damaged .*wizard"):
        GptTuiApp(session=tmp_path / "odd.json")

    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        assert not app.open_session(damaged)
        await pilot.pause()
        assert "is damaged" in notes(app)[-1]
        assert app.core.transcript.is_empty


async def test_a_missing_model_still_shows_the_session(
    tiny_model_dir, deterministic_settings, tmp_path
):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await branched_session(pilot)
        session = app.current_session()
        text = app.output.text
    session.model = str(tmp_path / "no-such-model")
    path = tmp_path / "moved.json"
    save(session, path)
    reopened = GptTuiApp(session=path)
    async with reopened.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: reopened.core.state == "no-model")
        await pilot.pause()
        assert reopened.output.text == text
        assert any("shown without its model" in n for n in notes(reopened))
        reopened.output.focus()
        await pilot.press("right_square_bracket")  # the tree is there to walk
        await pilot.pause()
        assert reopened.output.text != text


def test_session_paths(tmp_path) -> None:
    assert session_paths(tmp_path / "x") == (tmp_path / "x.json", tmp_path / "x.md")
    assert session_paths(tmp_path / "x.JSON")[0] == tmp_path / "x.JSON"
    json_path, md_path = session_paths(tmp_path)
    assert json_path.parent == tmp_path and json_path.name.startswith("gpt-tui-session-")
    assert md_path == json_path.with_suffix(".md")


async def test_open_from_the_palette_in_the_same_model(
    tiny_model_dir, deterministic_settings, tmp_path
):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await branched_session(pilot)
        path = app.save_session(tmp_path / "s.json")
        text = app.output.text
        await pilot.press("ctrl+l")  # clear
        await pilot.pause()
        assert app.output.text == ""
        app.action_open_session()
        (await path_dialog(pilot)).value = str(path)
        await pilot.press("enter")
        await pilot.pause()
        assert app.output.text == text and len(app.core.transcript.reply.tree.leaves()) == 2
        assert (
            app.core.transcript.tokenizer is app.core.backend.tokenizer
        )  # no reload: the same model
        assert "ppl" in app.status.render().plain  # the prompt's perplexity, from the file
