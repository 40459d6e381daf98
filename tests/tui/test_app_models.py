"""Switching models, downloads that fail or are cancelled, quitting in the middle of work."""

from __future__ import annotations

import shutil
import time

import pytest
from textual.widgets import DataTable, Input
from tui_helpers import wait_generated, wait_loaded, wait_until
from tui_http import ModelServer

from gpt_tui.engine import SamplingParams
from gpt_tui.settings import UserSettings, save_settings
from gpt_tui.tui.app import GptTuiApp
from gpt_tui.tui.screens.confirm import Confirm
from gpt_tui.tui.screens.model_picker import ModelPicker
from gpt_tui.tui.widgets.download_panel import DownloadPanel

SIZE = (120, 40)


def notes(app: GptTuiApp) -> list[str]:
    return [n.message for n in app._notifications]


@pytest.fixture
def missing_server(monkeypatch):
    server = ModelServer("missing")
    monkeypatch.setenv("GPT_TUI_GPT2_URL", server.url)
    yield server
    server.close()


@pytest.fixture
def slow_server(monkeypatch):
    server = ModelServer("slow")
    monkeypatch.setenv("GPT_TUI_GPT2_URL", server.url)
    yield server
    server.close()


async def test_switch_to_a_model_by_path(tiny_model_dir, tmp_path, deterministic_settings):
    other = shutil.copytree(tiny_model_dir, tmp_path / "tiny-two")
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await pilot.press("ctrl+j")
        await wait_generated(pilot)
        n = app.output.token_count

        await pilot.press("ctrl+o")
        assert isinstance(app.screen, ModelPicker)
        app.screen.query_one("#model-path", Input).value = str(other)
        app.screen.query_one("#model-path", Input).focus()
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: app.core.backend.name == "tiny-two" and app.core.state == "idle"
        )
        assert "tiny-two" in app.sub_title
        assert app.output.token_count == n  # the output stays

        # The new tokenizer is another object: continuing re-encodes the text, in a new turn.
        await pilot.press("ctrl+n")
        await wait_generated(pilot)
        assert app.output.token_count == 2 * n
        assert [t.role for t in app.core.transcript.turns] == ["prompt", "output", "output"]
        await pilot.press("ctrl+r")
        await wait_generated(pilot)
        assert app.output.token_count == 2 * n


async def test_an_uncached_model_asks_before_downloading(tiny_model_dir, missing_server):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await pilot.press("ctrl+o")
        table = app.screen.query_one(DataTable)
        assert table.row_count >= 5
        assert "not downloaded" in str(table.get_row("124M"))
        await pilot.press("enter")  # the cursor starts on the first row: 124M
        assert isinstance(app.screen, Confirm)
        assert "Download 124M" in app.screen.title_text
        await pilot.press("n")
        await pilot.pause()
        assert missing_server.requests == []
        assert app.core.backend.name == "tiny-gpt2"


async def test_a_failing_download_leaves_the_app_usable(tiny_model_dir, missing_server,
                                                        deterministic_settings):  # fmt: skip
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        app.switch_model("124M")
        await pilot.pause()
        assert isinstance(app.screen, Confirm)
        await pilot.press("y")
        await wait_until(pilot, lambda: any("was not found" in n for n in notes(app)))
        assert missing_server.requests
        assert app.core.backend.name == "tiny-gpt2" and app.core.state == "idle"
        assert any("still using tiny-gpt2" in n for n in notes(app))
        await pilot.press("ctrl+j")
        await wait_generated(pilot)
        assert app.output.token_count == deterministic_settings.max_tokens


async def test_escape_cancels_a_download_which_resumes_later(tiny_model_dir, slow_server,
                                                             gpt_tui_home):  # fmt: skip
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        app.switch_model("124M", confirmed=True)
        panel = app.query_one(DownloadPanel)
        await wait_until(pilot, lambda: panel.display and "Downloading 124M" in _label(app))
        await pilot.press("escape")
        await wait_until(pilot, lambda: any("Cancelled" in n for n in notes(app)))
        assert not panel.display
        assert app.core.backend.name == "tiny-gpt2"
        assert slow_server.disconnected.wait(5)
    parts = list((gpt_tui_home / "cache" / "models").glob("124M.checkpoint/*.part"))
    assert parts and parts[0].stat().st_size > 0  # the next attempt resumes from here


def _label(app: GptTuiApp) -> str:
    return str(app.query_one("#download-label").render())


async def test_quitting_mid_download_leaves_no_thread_running(tiny_model_dir, slow_server):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        app.switch_model("124M", confirmed=True)
        await wait_until(pilot, lambda: "Downloading 124M" in _label(app))
        started = time.monotonic()
        await pilot.press("ctrl+q")
    assert time.monotonic() - started < 5
    assert app.core.threads.count == 0
    assert slow_server.disconnected.wait(5)


async def test_quitting_mid_generation_leaves_no_thread_running(tiny_model_dir, gpt_tui_home):
    save_settings(UserSettings(sampling=SamplingParams(max_tokens=60000)))
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await pilot.press("ctrl+j")
        await wait_until(pilot, lambda: app.output.token_count > 0)
        started = time.monotonic()
        app.exit()
    assert time.monotonic() - started < 5
    assert app.core.threads.count == 0


async def test_a_model_that_cannot_load_is_explained(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    for path, message in ((tmp_path / "missing", "does not exist"), (tmp_path, "is not a model")):
        app = GptTuiApp(model=str(path))
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda app=app: app.core.state == "no-model")
            assert any(message in n for n in notes(app))
            await pilot.press("ctrl+j")
            assert any("No model loaded" in n for n in notes(app))
            assert app.output.token_count == 0


async def test_a_typo_in_a_model_name_suggests_the_right_one():
    app = GptTuiApp(model="124")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.core.state == "no-model")
        assert any("did you mean" in n for n in notes(app))
