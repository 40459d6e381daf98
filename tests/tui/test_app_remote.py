"""The app on a real OpenAI-compatible server (llama-cpp-python on 127.0.0.1): it connects,
says what the server can and cannot do, and generates as it does locally."""

from __future__ import annotations

from textual.widgets import DataTable, Input
from tui_helpers import generate_from, sampler_view_of, wait_loaded, wait_until

from gpt_tui.tui.app import GptTuiApp
from gpt_tui.tui.screens.model_picker import ModelPicker
from gpt_tui.tui.screens.sampler_view import SamplerViewScreen
from gpt_tui.tui.widgets.stage_table import StageTable

SIZE = (120, 36)


async def test_the_app_runs_on_a_server(llama_server, deterministic_settings):
    app = GptTuiApp(model=llama_server.url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        assert "llama-cpp-python" in app.status.backend and "no look inside" in app.status.backend
        assert app.chat_mode  # an instruct model behind a chat endpoint
        await pilot.press("f3")  # completion mode: the server has it
        assert not app.chat_mode
        await generate_from(pilot, "The capital of France is")
        reply = app.core.transcript.reply
        assert reply.events and all(e.top for e in reply.events)
        assert app.core.state in ("length", "eos")
        speculative = app.query_one("#sampling").query_one("#row-speculative")
        assert speculative.has_class("-unavailable")
        app.output.focus()
        app.output.select(len(app.output.events) - 1)
        await pilot.press("l")  # look inside: the local engine's only
        await pilot.pause()
        assert any("look inside needs the local engine" in n.message
                   for n in app._notifications)  # fmt: skip
        assert len(app.screen_stack) == 1
        await app.run_action("add_steering")  # interventions: the local engine's only
        await pilot.pause()
        assert any("patching) need the local engine" in n.message
                   for n in app._notifications)  # fmt: skip
        assert len(app.screen_stack) == 1 and not app.query_one("#interventions").display


async def test_the_picker_lists_a_servers_models(llama_server, tiny_model_dir):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, ModelPicker))
        picker = app.screen
        path = picker.query_one("#model-path", Input)
        path.value = llama_server.url
        path.focus()
        await pilot.press("enter")
        table = picker.query_one("#models", DataTable)
        listed = lambda: table.row_count == 1 and "server" in str(table.get_row_at(0))  # noqa: E731
        await wait_until(pilot, listed)
        await pilot.press("enter")  # connect to the server's model
        await wait_until(
            pilot, lambda: app.core.backend is not None and "@" in app.core.backend.name
        )
        assert app.core.model_name.startswith(llama_server.url + "#")


async def test_the_sampler_view_on_a_server_says_what_it_cannot_show(
    llama_server, deterministic_settings
):
    app = GptTuiApp(model=llama_server.url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await pilot.press("f3")  # completion mode
        await generate_from(pilot, "The capital of France is")
        screen = await sampler_view_of(pilot, app.output, 1)
        await pilot.pause()
        event = app.output.events[1]
        table = screen.query_one(StageTable)
        assert [str(c.label) for c in table.columns.values()] == ["token", "server"]
        assert table.token_ids == [a.token_id for a in event.top] and len(event.top) > 1
        status = str(screen.query_one("#sv-status").render())
        n = len(event.top)
        assert status == (
            f"llama-cpp-python: its top {n} before sampling only; the stages need the local engine"
        )
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, SamplerViewScreen))
