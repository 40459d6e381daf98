"""Choose a model: every catalog model with its size and whether it is ready, the models in the
Hugging Face cache (architecture, parameters, size), or a path or repo id typed in."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Label

from gpt_tui.errors import GptTuiError
from gpt_tui.models.catalog import CATALOG
from gpt_tui.tui.text import human_bytes, human_count


def hf_models() -> list:
    """The Hugging Face cache's models (never raises: the picker must open)."""
    from gpt_tui.models import store

    try:
        return store.hf_models()
    except (GptTuiError, OSError):
        return []


def model_status(name: str) -> str:
    """The model's cache status for the table (never raises: it is only a label)."""
    from gpt_tui.models import store

    try:
        return store.status(name)
    except (GptTuiError, OSError) as exc:
        return f"unknown ({exc})"


class ModelPicker(ModalScreen[str | None]):
    """Returns the chosen catalog name or path, or None."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(self, current: str | None = None) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="picker") as box:
            box.border_title = "Pick a model"
            table: DataTable = DataTable(id="models", cursor_type="row", zebra_stripes=True)
            yield table
            yield Label(
                "…or open a path (model directory, OpenAI checkpoint dir, .gguf) or a Hugging "
                "Face repo id (ORG/NAME):"
            )
            yield Input(placeholder="~/models/my-gpt2", id="model-path", compact=True)
            yield Label("enter: load · escape: close", classes="dim")

    def on_mount(self) -> None:
        table = self.query_one("#models", DataTable)
        table.add_columns("", "model", "params", "download", "memory", "status", "description")
        current_row = 0
        for i, spec in enumerate(CATALOG):
            is_current = self.current is not None and self.current.lower() in (
                n.lower() for n in spec.names
            )
            if is_current:
                current_row = i
            table.add_row(
                "●" if is_current else "",
                spec.name,
                human_count(spec.n_params),
                "—" if spec.bundled else human_bytes(spec.download_bytes),
                human_bytes(spec.memory_bytes),
                model_status(spec.name),
                spec.description,
                key=spec.name,
            )
        for i, model in enumerate(hf_models(), start=len(CATALOG)):
            is_current = self.current == model.repo_id
            if is_current:
                current_row = i
            status = "converted" if model.converted else "cached" if model.supported else "—"
            table.add_row(
                "●" if is_current else "",
                model.repo_id,
                human_count(model.n_params) if model.n_params else "?",
                "—",  # already on disk
                human_bytes(4 * model.n_params) if model.n_params else "?",  # float32 weights
                status,
                f"{model.hf_architecture}, {human_bytes(model.size_bytes)} in the Hugging Face "
                f"cache" + (f": {model.problem}" if model.problem else ""),
                key=model.repo_id,
            )
        table.move_cursor(row=current_row)
        table.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.dismiss(str(event.row_key.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        path = event.value.strip()
        if path:
            self.dismiss(path)
