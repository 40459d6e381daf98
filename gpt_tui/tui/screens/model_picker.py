"""Choose a model: every catalog model with its size and whether it is ready, the models in the
Hugging Face cache (architecture, parameters, size), the GGUF models in Ollama's, LM Studio's and
llama.cpp's stores, or a path or repo id typed in."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Label, Static

from gpt_tui.backends import openai as remote
from gpt_tui.display import human_bytes, human_count
from gpt_tui.errors import GptTuiError
from gpt_tui.models import hf_models as listing
from gpt_tui.models.availability import status
from gpt_tui.models.catalog import CATALOG
from gpt_tui.models.names import is_remote, same_model
from gpt_tui.models.stores.listing import StoreListing, store_models


def hf_models() -> list:
    """The Hugging Face cache's models (never raises: the picker must open)."""

    try:
        return listing.hf_models()
    except (GptTuiError, OSError):
        return []


def store_listing() -> StoreListing:
    """Other tools' GGUF models (never raises: the picker must open; a store that cannot be read
    is a notice)."""
    try:
        return store_models()
    except (GptTuiError, OSError) as exc:
        return StoreListing([], [f"other tools' stores not listed: {exc}"])


def model_status(name: str) -> str:
    """The model's cache status for the table (never raises: it is only a label)."""

    try:
        return status(name)
    except (GptTuiError, OSError) as exc:
        return f"unknown ({exc})"


class ModelPicker(ModalScreen[str | None]):
    """Returns the chosen catalog name, path or server URL (with #MODEL), or None."""

    DEFAULT_CSS = """
        ModelPicker {
            align: center middle;
        }
        ModelPicker #picker {
            width: 95%;
            height: auto;
            max-height: 90%;
            border: thick $accent;
            background: $surface;
            padding: 0 1;
        }
        ModelPicker #models {
            height: auto;
            max-height: 10;
            margin-bottom: 1;
        }
        ModelPicker #model-description {
            height: auto;
            margin-bottom: 1;
        }
        ModelPicker #store-notices {
            height: 1;
            text-wrap: nowrap;
            text-overflow: ellipsis;
            color: $warning;
        }
        ModelPicker #picker Input {
            margin-bottom: 1;
        }
        ModelPicker .dim {
            color: $text-muted;
        }
    """

    BINDINGS = [Binding("escape", "dismiss(None)", "Close")]

    class ServerModels(Message):
        """What a server listed (`models`), or why it could not be asked (`error`)."""

        def __init__(self, url: str, models: list[Any], error: str | None = None) -> None:
            super().__init__()
            self.url, self.models, self.error = url, models, error

    def __init__(self, current: str | None = None, api_key: str | None = None) -> None:
        super().__init__()
        self.current = current
        self._api_key = api_key

    def compose(self) -> ComposeResult:
        with Vertical(id="picker") as box:
            box.border_title = "Pick a model"
            table: DataTable = DataTable(id="models", cursor_type="row", zebra_stripes=True)
            yield table
            # The highlighted model's description whole: a narrow table cuts its column.
            yield Static("", id="model-description", classes="dim")
            yield Static("", id="store-notices")
            yield Static(  # (a Static wraps: a Label would be cut at 80 columns)
                "…or open a path (model directory, OpenAI checkpoint dir, .gguf), a Hugging "
                "Face repo id (ORG/NAME) or a server (http://HOST:PORT/v1: lists its models):"
            )
            yield Input(placeholder="~/models/my-gpt2", id="model-path", compact=True)
            yield Label("enter: load · escape: close", classes="dim", id="picker-help")

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
        listing = store_listing()
        for i, stored in enumerate(listing.models, start=table.row_count):
            s, is_current = stored.summary, same_model(self.current, stored.name)
            if is_current:
                current_row = i
            table.add_row(
                "●" if is_current else "",
                stored.label,
                human_count(s.n_params) if s.n_params else "?",
                "—",  # already on disk
                human_bytes(s.memory_bytes) if s.memory_bytes else "?",  # float32
                "here" if s.supported else "—",
                f"{s.architecture} {s.quantization}, {human_bytes(s.size_bytes)} in "
                f"{stored.store}'s store"
                + (f" ({stored.name})" if stored.name != stored.label else "")
                + (f": {s.problem}" if s.problem else ""),
                key=stored.name,
            )
        notices = self.query_one("#store-notices", Static)
        notices.display = bool(listing.notices)
        if listing.notices:
            more = len(listing.notices) - 1
            notices.update(Content(listing.notices[0] + (
                f" (+{more} more: `gpt-tui models`)" if more else "")))  # fmt: skip
        table.move_cursor(row=current_row)
        table.focus()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        row = event.data_table.get_row(event.row_key)
        self.query_one("#model-description", Static).update(
            Content(f"{row[1]}: {row[-1]}") if row else Content("")
        )

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.dismiss(str(event.row_key.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        path = event.value.strip()
        if is_remote(path) and "#" not in path:
            self.query_one("#picker-help", Label).update(f"asking {path} for its models…")
            self._list_server(path)
        elif path:
            self.dismiss(path)

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _list_server(self, url: str) -> None:

        try:
            models = remote.models_at(url, remote.api_key(self._api_key))
        except GptTuiError as exc:
            self.post_message(self.ServerModels(url, [], str(exc)))
        else:
            self.post_message(self.ServerModels(url, models))

    def on_model_picker_server_models(self, message: ServerModels) -> None:
        """The server's models in the table, to pick as any other (enter connects)."""
        help_label = self.query_one("#picker-help", Label)
        if message.error or not message.models:
            help_label.update(message.error or f"{message.url} lists no models")
            return
        table = self.query_one("#models", DataTable)
        table.clear()
        for model in message.models:
            table.add_row("", model.id, "", "", "", "server", f"{model.owned_by} at "
                          f"{message.url}", key=f"{message.url}#{model.id}")  # fmt: skip
        table.move_cursor(row=0)
        table.focus()
        help_label.update(f"models at {message.url} · enter: connect · escape: close")
