"""Other tools' GGUF models in the app's picker: listed beside the catalog, opened by the name
shown, and a broken store never keeps the picker from opening."""

from __future__ import annotations

import gguf
from model_stores import Stores, add_ollama_model
from textual.widgets import DataTable, Static
from tiny_gguf import tiny_tensors, write_tiny_gguf
from tui_helpers import wait_loaded, wait_until

from gpt_tui.tui.app import GptTuiApp
from gpt_tui.tui.screens.model_picker import ModelPicker

SIZE = (120, 40)


async def test_the_picker_lists_and_opens_an_ollama_model(tiny_model_dir, stores: Stores, tmp_path):
    tiny = write_tiny_gguf(tmp_path / "t.gguf", tiny_tensors(), gguf.GGMLQuantizationType.Q4_0)
    add_ollama_model(stores.ollama, "tiny:q4", tiny)
    add_ollama_model(stores.ollama, "gone:1b", None)  # names a blob that is not there
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await pilot.press("ctrl+o")
        assert isinstance(app.screen, ModelPicker)
        table = app.screen.query_one(DataTable)
        row = [str(cell) for cell in table.get_row("tiny:q4")]
        assert row[5] == "here" and "llama Q4_0" in row[6] and "Ollama" in row[6]
        notice = str(app.screen.query_one("#store-notices", Static).render())
        assert "gone:1b" in notice and "missing" in notice
        table.move_cursor(row=table.get_row_index("tiny:q4"))
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.core.backend.name == "tiny:q4", timeout=30)
        assert app.core.state == "idle"
