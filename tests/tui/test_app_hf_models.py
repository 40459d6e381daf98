"""Hugging Face models in the app: listed in the picker from the cache, and fetched from the
Hub (a real server on 127.0.0.1) through the same confirm -> load worker -> progress path as
GPT-2."""

from __future__ import annotations

from pathlib import Path

from hub_http import HubServer
from textual.widgets import DataTable
from tui_helpers import wait_loaded, wait_until

from gpt_tui.models import availability
from gpt_tui.tui.app import GptTuiApp
from gpt_tui.tui.screens.confirm import Confirm
from gpt_tui.tui.screens.model_picker import ModelPicker
from gpt_tui.tui.widgets.download_panel import DownloadPanel

SIZE = (120, 40)
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hf"


async def test_the_picker_lists_the_hugging_face_cache(tiny_model_dir, hf_hub_cache):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await pilot.press("ctrl+o")
        assert isinstance(app.screen, ModelPicker)
        table = app.screen.query_one(DataTable)
        row = [str(cell) for cell in table.get_row("openai-community/gpt2")]
        assert row[1] == "openai-community/gpt2" and row[2] != "?"  # its parameter count
        assert "GPT2LMHeadModel" in row[6] and row[5] == "cached"
        assert "LlamaForCausalLM" in str(table.get_row("HuggingFaceTB/SmolLM2-Tiny"))
        table.move_cursor(row=table.get_row_index("openai-community/gpt2"))
        await pilot.press("enter")  # cached: loads without asking
        await wait_until(pilot, lambda: app.core.backend.name == "openai-community/gpt2")
        assert app.core.state == "idle"


async def test_a_hub_model_asks_then_downloads_with_progress(tiny_model_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    server = HubServer({"someone/tiny-llama": HubServer.files_of(FIXTURES / "llama3")})
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    try:
        app = GptTuiApp(model=tiny_model_dir)
        async with app.run_test(size=SIZE) as pilot:
            await wait_loaded(pilot)
            app.switch_model("someone/tiny-llama")
            await pilot.pause()
            assert isinstance(app.screen, Confirm)
            assert "Download someone/tiny-llama" in app.screen.title_text
            await pilot.press("y")
            await wait_until(
                pilot, lambda: app.core.backend.name == "someone/tiny-llama", timeout=30
            )
            assert not app.query_one(DownloadPanel).display
            assert server.gets("model-00001-of-00005.safetensors")
        assert availability.status("someone/tiny-llama") == "cached"
    finally:
        server.close()


async def test_escape_cancels_a_hub_download(tiny_model_dir, monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 16 * 1024)  # progress while it runs
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    server = HubServer(
        {"someone/slow": HubServer.files_of(FIXTURES / "smollm2")}, bytes_per_second=200_000
    )
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    try:
        app = GptTuiApp(model=tiny_model_dir)
        async with app.run_test(size=SIZE) as pilot:
            await wait_loaded(pilot)
            app.switch_model("someone/slow", confirmed=True)
            panel = app.query_one(DownloadPanel)
            label = app.query_one("#download-label")
            await wait_until(pilot, lambda: panel.display and "someone/slow" in str(label.render()))
            await wait_until(pilot, lambda: bool(server.gets("tokenizer.json")))  # 3.5 MB
            await pilot.press("escape")
            messages = lambda: [n.message for n in app._notifications]  # noqa: E731
            await wait_until(pilot, lambda: any("Cancelled" in m for m in messages()))
            assert not panel.display and app.core.backend.name == "tiny-gpt2"
        assert app.core.threads.count == 0
        assert availability.status("someone/slow") == "partial"  # the files done stay for next time
        assert not server.gets("model.safetensors")
    finally:
        server.close()
