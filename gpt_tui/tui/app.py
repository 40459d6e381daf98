"""GptTuiApp: the playground. Composes the widgets, binds the keys, owns the workers.

Three kinds of thread worker, none of which ever runs on the UI thread:
- generation (one at a time, exclusive): iterates the engine and posts token batches
  (the `Generating` mixin, generating.py);
- model loading (download, conversion, reading weights), cancellable through an Event
  (the `ModelLoading` mixin, model_loading.py);
- prompt token counting, debounced while the user types (here).
Each posts messages tagged with the id of its request, so the late words of a replaced worker
are dropped. Quitting cancels them all and waits for their threads to end.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import Footer, Header, TextArea

from gpt_tui.engine import KVCache, SamplingParams
from gpt_tui.errors import GptTuiError
from gpt_tui.session import Session
from gpt_tui.settings import UserSettings, load_settings, save_settings
from gpt_tui.tui import messages as msg
from gpt_tui.tui.branching import Branching
from gpt_tui.tui.chat_format import encode_chat, has_chat_template
from gpt_tui.tui.colouring import MODE_LABELS, MODES
from gpt_tui.tui.commands import PlaygroundCommands
from gpt_tui.tui.generating import Generating
from gpt_tui.tui.generation import ThreadCounter
from gpt_tui.tui.look_inside import main_view_request
from gpt_tui.tui.model_loading import ModelLoading
from gpt_tui.tui.screens.compare import CompareScreen, compare_request
from gpt_tui.tui.screens.help import HelpScreen
from gpt_tui.tui.screens.look_inside import LookInsideScreen
from gpt_tui.tui.session_files import SessionFiles, read_session
from gpt_tui.tui.transcript import Transcript
from gpt_tui.tui.widgets.branch_view import BranchView
from gpt_tui.tui.widgets.compare_column import ColumnSettings
from gpt_tui.tui.widgets.download_panel import DownloadPanel
from gpt_tui.tui.widgets.inspector import TokenInspector
from gpt_tui.tui.widgets.legend import ColourLegend
from gpt_tui.tui.widgets.output_view import OutputView
from gpt_tui.tui.widgets.prompt_editor import PromptEditor
from gpt_tui.tui.widgets.sampling_panel import SamplingPanel
from gpt_tui.tui.widgets.status_bar import StatusBar

COUNT_DELAY = 0.15  # seconds of quiet typing before the prompt's tokens are counted
SAVE_DELAY = 0.5  # seconds after the last settings change before they are written
QUIT_TIMEOUT = 10.0  # seconds to wait for worker threads when quitting
# The app's priority keys must not act behind a dialog (the picker, the palette, help) or on
# the compare screen, which has keys of its own.
MAIN_SCREEN_ACTIONS = frozenset(
    {"generate", "stop", "continue_generation", "regenerate", "pick_model", "cycle_colouring",
     "toggle_chat", "clear_output", "help", "compare", "save_session", "open_session",
     "pick_alternative", "sibling", "branch_point"}
)  # fmt: skip


class GptTuiApp(ModelLoading, Generating, Branching, SessionFiles, App[None]):
    """A playground for GPT-style models: prompt, sample, inspect."""

    TITLE = "gpt-tui"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {PlaygroundCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]

    BINDINGS = [
        Binding("ctrl+j,f5", "generate", "Generate", priority=True,
                tooltip="Generate from the prompt (in chat: send the message)"),
        Binding("escape", "stop", "Stop", tooltip="Stop the generation (or a download)"),
        Binding("ctrl+n", "continue_generation", "Continue", priority=True,
                tooltip="Continue the output from where it stopped"),
        Binding("ctrl+r", "regenerate", "Regenerate", priority=True,
                tooltip="Replace the last output (the prompt stays cached)"),
        Binding("ctrl+o", "pick_model", "Model", priority=True, tooltip="Choose a model"),
        Binding("f2", "cycle_colouring", "Colour", priority=True,
                tooltip="Colour tokens: off, by probability, by rank, by surprisal"),
        Binding("f3", "toggle_chat", "Chat", priority=True,
                tooltip="Switch between completion and chat mode"),
        Binding("ctrl+l", "clear_output", "Clear", show=False, tooltip="Clear the output"),
        Binding("f4", "compare", "Compare", priority=True,
                tooltip="Compare 2 to 4 samples of the prompt side by side"),
        Binding("ctrl+s", "save_session", "Save", priority=True,
                tooltip="Save the session: JSON to reopen (gpt-tui --open), Markdown to share"),
        Binding("left_square_bracket,alt+left", "sibling(-1)", "Previous branch", show=False,
                tooltip="Show the previous branch at the fork above the selected token"),
        Binding("right_square_bracket,alt+right", "sibling(1)", "Next branch", show=False,
                tooltip="Show the next branch at the fork above the selected token"),
        Binding("left_curly_bracket,alt+up", "branch_point(-1)", "Fork above", show=False,
                tooltip="Select the token where the text forks, before the selected one"),
        Binding("right_curly_bracket,alt+down", "branch_point(1)", "Fork below", show=False,
                tooltip="Select the token where the text forks, after the selected one"),
        Binding("l", "look_inside", "Look inside", show=False,
                tooltip="The logit lens, attention and logit attribution of the selected token"),
        Binding("enter", "pick_alternative", "Alternatives", show=False,
                tooltip="In the output: choose another token for the selected one (then enter: "
                        "branch on it)"),
        *(Binding(str(n), f"pick_alternative({n})", show=False) for n in range(1, 10)),
        Binding("f1", "help", "Help", priority=True, tooltip="Show the keys"),
    ]  # fmt: skip

    chat_mode: reactive[bool] = reactive(False, init=False)
    colouring: reactive[str] = reactive("off", init=False)

    def __init__(
        self, model: str | Path | None = None, session: Session | str | Path | None = None
    ) -> None:
        """`session`: a session (or its file) to open, in its model unless `model` is given;
        a damaged file raises SessionFileError here, before the app starts."""
        super().__init__()
        self.settings, self._settings_problems = load_settings()
        self._opening = read_session(session) if session is not None else None
        if model is None and self._opening is not None:
            model = self._opening[0].model or None
        self.requested_model = str(model) if model else None
        self.sampling: SamplingParams = self.settings.sampling
        self.n_top: int = self.settings.n_top
        self.speculative: str = self.settings.speculative  # read by each generation's worker
        self.transcript = Transcript()
        self.loaded: Any = None  # gpt_tui.models.store.LoadedModel
        self.model_name: str | None = None  # as asked for: catalog name or path
        self.cache: KVCache | None = None
        self.state = "loading"
        self._run_id = 0
        self._status_shown = 0.0
        self._load_id = 0
        self._load_cancel: threading.Event | None = None
        self._downloading = False
        self._count_version = 0
        self._count_timer: Timer | None = None
        self._save_timer: Timer | None = None
        self._engine_lock = threading.Lock()  # one generation touches the kv cache at a time
        self._threads = ThreadCounter()  # worker threads still running
        self._drafters: dict[tuple[str, int], Any] = {}  # (setting, model id) -> its drafter
        self._compare_columns: list[ColumnSettings] | None = None  # kept between visits

    # --- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="document"):
                yield PromptEditor(id="prompt-editor")
                output = OutputView(id="output")
                output.border_title = "Output"
                yield output
                yield BranchView(id="branch-view")
                yield ColourLegend(id="legend")
            with VerticalScroll(id="sidebar"):
                yield SamplingPanel(self.sampling, self.n_top, self.speculative, id="sampling")
                yield TokenInspector(id="inspector")
        yield DownloadPanel(id="download")
        yield StatusBar(id="status")
        yield Footer(compact=True)

    @property
    def output(self) -> OutputView:
        return self.query_one("#output", OutputView)

    @property
    def prompt_editor(self) -> PromptEditor:
        return self.query_one("#prompt-editor", PromptEditor)

    @property
    def status(self) -> StatusBar:
        return self.query_one("#status", StatusBar)

    @property
    def inspector(self) -> TokenInspector:
        return self.query_one("#inspector", TokenInspector)

    @property
    def download_panel(self) -> DownloadPanel:
        return self.query_one("#download", DownloadPanel)

    def on_mount(self) -> None:
        self.download_panel.display = False
        colouring = self.settings.ui.get("colouring", "off")
        self.colouring = colouring if colouring in MODES else "off"
        self.query_one("#legend", ColourLegend).mode = self.colouring
        for problem in self._settings_problems:
            self.notify(problem, severity="warning", title="Settings")
        self.prompt_editor.text_area.focus()
        if self._opening is not None:
            self._show_session(*self._opening, load=False)  # the model is loaded just below
        self.switch_model(self._startup_model())

    def _startup_model(self) -> str:
        """The model asked for, else the last one used if it loads offline, else smollm2."""
        from gpt_tui.models.store import default_model_name

        return self.requested_model or default_model_name()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if len(self.screen_stack) > 1 and action in MAIN_SCREEN_ACTIONS:
            return False
        if action == "pick_alternative":
            return self._picking_keys_apply()
        return True

    def _set_state(self, state: str) -> None:
        self.state = state
        self.status.state = state

    # --- view ------------------------------------------------------------------------------

    def on_output_view_token_selected(self, message: OutputView.TokenSelected) -> None:
        text = None
        if message.event is not None and self.loaded is not None:
            try:
                text = self.loaded.tokenizer.token_text(message.event.token_id)
            except ValueError:  # a token of the previous model's vocabulary
                text = None
        self.inspector.show(message.event, message.index, text)

    def on_output_view_prompt_token_selected(self, message: OutputView.PromptTokenSelected) -> None:
        token = message.token
        text = ""
        if self.loaded is not None:
            try:
                text = self.loaded.tokenizer.token_text(token.token_id)
            except ValueError:  # a token of the previous model's vocabulary
                text = token.score.text if token.score is not None else ""
        self.inspector.show_prompt_token(token, message.index, text)

    def action_cycle_colouring(self) -> None:
        self.colouring = MODES[(MODES.index(self.colouring) + 1) % len(MODES)]
        self.notify(f"Colouring {MODE_LABELS[self.colouring]}", timeout=2)

    def watch_colouring(self, mode: str) -> None:
        self.output.colouring = mode
        self.query_one("#legend", ColourLegend).mode = mode
        self._update_settings(ui={**self.settings.ui, "colouring": mode})

    def action_toggle_chat(self) -> None:
        self.chat_mode = not self.chat_mode
        if self.loaded is not None and has_chat_template(self.loaded.tokenizer):
            self._update_settings(ui={**self.settings.ui, "chat_mode": self.chat_mode})
        self.notify(
            "Chat mode: the box below sends messages" if self.chat_mode else "Completion mode",
            timeout=3,
        )

    def watch_chat_mode(self, chat: bool) -> None:
        self.action_stop()
        self.transcript.clear(mode="chat" if chat else "completion")
        self.output.border_title = "Chat" if chat else "Output"
        self.output.placeholder = (
            "Type a message below and press ctrl+j (or F5) to send it."
            if chat
            else "Write a prompt and press ctrl+j (or F5) to generate."
        )
        self.output.show_transcript(self.transcript, self._assistant_name())
        self.prompt_editor.set_chat(chat)
        self.status.mode = "chat" if chat else "completion"
        self.status.prompt_score = None
        self._schedule_count()

    def action_clear_output(self) -> None:
        self.action_stop()
        self.transcript.clear()
        self.output.show_transcript(self.transcript, self._assistant_name())
        self.status.stats = None
        self.status.prompt_score = None
        self.status.note = ""
        if self.loaded is not None:
            self._set_state("idle")
        self._schedule_count()

    def action_copy_output(self) -> None:
        text = self.transcript.text()
        if not text:
            self.notify("The output is empty", severity="warning")
            return
        self.copy_to_clipboard(text)
        self.notify(f"Copied {len(text)} characters")

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.BINDINGS))

    def action_compare(self) -> None:
        """Open the side-by-side view on the current prompt (or chat)."""
        if not self._model_ready():
            return
        try:
            request = compare_request(self.loaded, self.transcript, self.prompt_editor.text,
                                      self.chat_mode, self.sampling, self.n_top)  # fmt: skip
        except ValueError as exc:
            self.notify(str(exc), severity="warning")
            return
        if self.state == "generating":
            self.action_stop()  # it would hold the engine until it ended, out of sight

        def closed(columns: list[ColumnSettings] | None) -> None:
            self._compare_columns = columns

        screen = CompareScreen(request, self._compare_columns, self.colouring)
        self.push_screen(screen, closed)

    def action_look_inside(self) -> None:
        """Look inside the selected token's prediction (a compare column: its own selection)."""
        if self.screen is not self.screen_stack[0]:
            look = getattr(self.screen, "action_look_inside", None)  # the compare screen's
            if look is not None:
                look()
            return
        if not self._model_ready():
            return
        output = self.output
        selected_prompt = output.selected_prompt
        prompt = output.prompt_tokens[selected_prompt] if selected_prompt is not None else None
        model, tokenizer = self.loaded.model, self.loaded.tokenizer
        try:
            request = main_view_request(self.transcript, output.selected, prompt, model, tokenizer,
                                        self._encode_chat, self.cache)  # fmt: skip
        except ValueError as exc:
            self.notify(str(exc), severity="warning")
            return
        self.push_screen(LookInsideScreen(request, self._engine_lock, self._threads))

    # --- sampling settings -----------------------------------------------------------------

    def on_sampling_panel_changed(self, message: SamplingPanel.Changed) -> None:
        self.sampling = message.params  # read by the generation worker before every token
        self.n_top = message.n_top
        self._update_settings(sampling=message.params, n_top=message.n_top)

    def on_sampling_panel_speculative_changed(
        self, message: SamplingPanel.SpeculativeChanged
    ) -> None:
        self.speculative = message.choice  # from the next generation on
        self._update_settings(speculative=message.choice)

    def set_speculative(self, choice: str) -> None:
        """Speculative decoding off, by prompt lookup, or with a draft model (the palette)."""
        self.speculative = choice
        self.query_one("#sampling", SamplingPanel).set_speculative(choice)
        self._update_settings(speculative=choice)
        self.notify(f"Speculative decoding: {choice} (from the next generation)", timeout=3)

    def action_reset_sampling(self) -> None:
        self.sampling = SamplingParams()
        self.n_top = UserSettings().n_top
        self.query_one("#sampling", SamplingPanel).set_values(self.sampling, self.n_top)
        self._update_settings(sampling=self.sampling, n_top=self.n_top)
        self.notify("Sampling settings back to their defaults", timeout=3)

    def _update_settings(self, **changes: Any) -> None:
        self.settings = self.settings.replace(**changes)
        if self._save_timer is not None:
            self._save_timer.stop()
        self._save_timer = self.set_timer(SAVE_DELAY, self._save_settings)

    def _save_settings(self) -> None:
        self._save_timer = None
        try:
            save_settings(self.settings)
        except GptTuiError as exc:
            self.notify(str(exc), severity="error", title="Settings not saved")

    # --- prompt token count ----------------------------------------------------------------

    @on(TextArea.Changed, "#prompt")
    def _prompt_changed(self) -> None:
        self._schedule_count()

    def _schedule_count(self) -> None:
        if self._count_timer is not None:
            self._count_timer.stop()
        self._count_timer = self.set_timer(COUNT_DELAY, self._count_prompt)

    def _count_prompt(self) -> None:
        self._count_timer = None
        if not self.is_running:  # a timer that fired while the app shuts down
            return
        if self.loaded is None:
            self.prompt_editor.show_count(None, 0, 0, self.chat_mode)
            return
        self._count_version += 1
        messages = None
        if self.chat_mode:
            messages = self.transcript.messages()
        self._count_worker(self._count_version, self.prompt_editor.text, self.loaded.tokenizer,
                           messages)  # fmt: skip

    @work(thread=True, exclusive=True, group="count", exit_on_error=False)
    def _count_worker(
        self, version: int, text: str, tokenizer: Any, messages: list[dict[str, str]] | None
    ) -> None:
        with self._threads.running():
            n_prompt = len(tokenizer.encode(text))
            n_context = max(1, n_prompt)
            if messages is not None:
                try:
                    chat = [*messages, {"role": "user", "content": text}]
                    n_context = len(encode_chat(tokenizer, chat))
                except Exception as exc:  # noqa: BLE001 - shown when generating; just log it
                    self.log.warning(f"cannot render the chat to count it: {exc}")
            self.post_message(msg.PromptCounted(version, n_prompt, n_context))

    def on_prompt_counted(self, message: msg.PromptCounted) -> None:
        if message.version != self._count_version or self.loaded is None or not self.is_running:
            return
        n_ctx = self.loaded.model.n_ctx
        self.prompt_editor.show_count(message.n_prompt, message.n_context, n_ctx, self.chat_mode)
        if self.transcript.is_empty:  # else the status shows what the last run used
            self.status.context = (min(message.n_context, n_ctx), n_ctx)

    # --- quitting --------------------------------------------------------------------------

    async def on_unmount(self) -> None:
        """Stop every worker thread and wait for it: a generation stops within a token, a
        download within a chunk."""
        if self._load_cancel is not None:
            self._load_cancel.set()
        self.workers.cancel_all()
        if self._save_timer is not None:
            self._save_timer.stop()
            self._save_settings()
        self._threads.wait_idle(QUIT_TIMEOUT)
