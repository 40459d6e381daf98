"""GptTuiApp: the playground's terminal front end. Composes the widgets, binds the keys, runs
the workers, and draws what the playground core (`gpt_tui/playground/core.py`) holds.

The core owns the state and the rules (the model, the transcript and its branches, runs,
settings, sessions); the app turns keys and widget messages into calls of its methods and draws
the result. Three kinds of thread worker, none of which ever runs on the UI thread:
- generation (one at a time, exclusive): `Playground.execute`, posting its events;
- model loading (download, conversion, reading weights), cancellable through an Event;
- prompt token counting, debounced while the user types (the prompt editor's own).
The work itself is the core's (`execute`, `load`) or the prompt editor's (its count); each
worker posts messages tagged with the id of its request, so the late words of a replaced worker
are dropped. Quitting cancels them all and waits for their threads to end.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import Header, OptionList
from textual.worker import get_current_worker

from gpt_tui.backends.openai.step import ServerStep
from gpt_tui.display import visible_token
from gpt_tui.engine import Alternative, SamplingParams
from gpt_tui.engine.sampling import DEFAULT_ORDER, temperature_last
from gpt_tui.errors import GptTuiError, SessionFileError
from gpt_tui.models.names import model_setting
from gpt_tui.playground.compare import request_from_core, with_and_without
from gpt_tui.playground.core import NOT_THE_REPLY, Loaded, Opened, Playground, PlaygroundError, Run
from gpt_tui.playground.events import PromptScored, RunFinished, RunNotice, TokensStreamed
from gpt_tui.playground.intervention_list import entries
from gpt_tui.playground.look_inside_requests import main_view_request, reply_token_request
from gpt_tui.playground.sampler_lab import add_branches, main_view_step
from gpt_tui.playground.session import Session
from gpt_tui.playground.session_files import default_session_dir, default_session_path
from gpt_tui.settings import (
    UserSettings,
    default_model_name,
    find_preset,
    load_settings,
    save_preset,
    save_settings,
)
from gpt_tui.tokenizer.chat import has_chat_template
from gpt_tui.tui import messages as msg
from gpt_tui.tui.colouring import MODE_LABELS, MODES
from gpt_tui.tui.commands import PlaygroundCommands
from gpt_tui.tui.model_loading import catalog_spec, download_question
from gpt_tui.tui.screens.compare import CompareScreen
from gpt_tui.tui.screens.confirm import Confirm
from gpt_tui.tui.screens.help import HelpScreen
from gpt_tui.tui.screens.look_inside import LookInsideScreen
from gpt_tui.tui.screens.model_picker import ModelPicker
from gpt_tui.tui.screens.preset_name import PresetNameScreen
from gpt_tui.tui.screens.sampler_view import (
    SERVER_NOTE,
    SERVER_ROWS,
    Expanded,
    Resampled,
    SamplerViewScreen,
)
from gpt_tui.tui.screens.session_path import SessionPathScreen
from gpt_tui.tui.screens.steering import SteeringScreen
from gpt_tui.tui.widgets.attribution_table import AttributionTable
from gpt_tui.tui.widgets.branch_view import BranchView
from gpt_tui.tui.widgets.compare_column import ColumnSettings
from gpt_tui.tui.widgets.download_panel import DownloadPanel
from gpt_tui.tui.widgets.inspector import TokenInspector
from gpt_tui.tui.widgets.intervention_list import InterventionList
from gpt_tui.tui.widgets.key_footer import KeyFooter
from gpt_tui.tui.widgets.legend import ColourLegend
from gpt_tui.tui.widgets.output_view import PLACEHOLDER, OutputView
from gpt_tui.tui.widgets.prompt_editor import PromptEditor
from gpt_tui.tui.widgets.sampling_panel import SamplingPanel
from gpt_tui.tui.widgets.status_bar import StatusBar

SAVE_DELAY = 0.5  # seconds after the last settings change before they are written
QUIT_TIMEOUT = 10.0  # seconds to wait for worker threads when quitting
STATUS_INTERVAL = 0.25  # seconds between updates of the speed shown while generating
SHORT = 32  # rows: below this the sidebar cannot show every setting and the inspector at once
# The app's priority keys must not act behind a dialog (the picker, the palette, help) or on
# the compare screen, which has keys of its own.
MAIN_SCREEN_ACTIONS = frozenset(
    {"generate", "stop", "continue_generation", "regenerate", "pick_model", "cycle_colouring",
     "toggle_chat", "clear_output", "help", "compare", "save_session", "open_session",
     "pick_alternative", "sibling", "branch_point"}
)  # fmt: skip


class GptTuiApp(App[None]):
    """A playground for GPT-style models: prompt, sample, inspect."""

    TITLE = "gpt-tui"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {PlaygroundCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]

    BINDINGS = [
        # First: at 80 columns the footer shows what fits, and F1 lists every key.
        Binding("f1", "help", "Help", priority=True, tooltip="Show the keys"),
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
        Binding("shift+f4", "compare_interventions", "With/without", show=False, priority=True,
                tooltip="The prompt with and without the interventions, same seed, in compare"),
        Binding("ctrl+s", "save_session", "Save", priority=True,
                tooltip="Save the session: JSON to reopen (--open), Markdown and HTML to share"),
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
        Binding("s", "sampler_view", "Sampler view", show=False,
                tooltip="What each sampling stage does to the selected token's step, live"),
        Binding("enter", "pick_alternative", "Alternatives", show=False,
                tooltip="In the output: choose another token for the selected one (then enter: "
                        "branch on it)"),
        *(Binding(str(n), f"pick_alternative({n})", show=False) for n in range(1, 10)),
    ]  # fmt: skip

    chat_mode: reactive[bool] = reactive(False, init=False)
    colouring: reactive[str] = reactive("off", init=False)

    def __init__(
        self,
        model: str | Path | None = None,
        session: Session | str | Path | None = None,
        api_key: str | None = None,
    ) -> None:
        """`session`: a session (or its file) to open, in its model unless `model` is given;
        a damaged file raises SessionFileError here, before the app starts. `api_key`: for a
        server given as a URL (else OPENAI_API_KEY); held in memory only."""
        super().__init__()
        self._api_key = api_key
        self.settings, self._settings_problems = load_settings()
        self.core = Playground(self.settings)
        self._opening = None
        if session is not None:
            self._opening = self.core.open_session(session, load=False)
            if model is None:
                model = self._opening.session.model or None
        self.requested_model = str(model) if model else None
        self._status_shown = 0.0
        self._save_timer: Timer | None = None
        self._main_panel_stale = False  # the sampler view changed settings its panel shows
        self._compare_columns: list[ColumnSettings] | None = None  # kept between visits
        self._editor_text: dict[bool, str] = {}  # the box's text of the mode put aside

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
                core = self.core
                yield InterventionList(id="interventions")  # shown while any is active
                yield SamplingPanel(core.sampling, core.n_top, core.speculative, id="sampling")
                yield TokenInspector(id="inspector")
        yield DownloadPanel(id="download")
        yield StatusBar(id="status")
        yield KeyFooter()

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

    @property
    def branch_view(self) -> BranchView:
        return self.query_one("#branch-view", BranchView)

    @property
    def sampling_panel(self) -> SamplingPanel:
        return self.query_one("#sampling", SamplingPanel)

    def on_mount(self) -> None:
        colouring = self.settings.ui.get("colouring", "off")
        self.colouring = colouring if colouring in MODES else "off"
        self.query_one("#legend", ColourLegend).mode = self.colouring
        for problem in self._settings_problems:
            self.notify(problem, severity="warning", title="Settings")
        self.prompt_editor.focus_text()
        # The model asked for, else the last one used if it loads offline, else smollm2.
        name = self.requested_model or default_model_name()
        if self._opening is not None:
            self._show_opened(self._opening)  # its model is loaded just below
        else:
            self.chat_mode = self._expected_chat(name)  # no switch once it has loaded
        self.switch_model(name)

    def _expected_chat(self, name: str) -> bool:
        """The mode `name` will most likely be used in, known before it loads: GPT-2 has no
        chat template; other models chat unless the user left chat mode last time."""
        spec = catalog_spec(name)
        return (spec is None or spec.kind != "gpt2") and self.settings.ui.get("chat_mode", True)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if len(self.screen_stack) > 1 and action in MAIN_SCREEN_ACTIONS:
            return False
        if action == "pick_alternative":
            return self._picking_keys_apply()
        if action == "stop":  # shown (and bound) only while there is something to stop
            return self.core.state == "generating" or self.download_panel.showing
        return True

    def _try(self, call: Any, *args: Any) -> Any:
        """Call the core; a request it refuses is a warning (None returned)."""
        try:
            return call(*args)
        except PlaygroundError as exc:
            self.notify(str(exc), severity="warning")
            return None

    def _backend_that_can(self, capability: str) -> Any:
        """The model's backend if it can do `capability`; else None, the reason told."""
        backend = self._try(self.core.require_model)
        why_not = backend.capabilities.why_not(capability) if backend is not None else None
        if why_not:
            self.notify(why_not, severity="warning")
            return None
        return backend

    # --- drawing what the core holds --------------------------------------------------------

    def _show_state(self) -> None:
        self.status.state = self.core.state
        self.refresh_bindings()  # escape: Stop, while something runs

    def _show_document(self, select: int | None = None) -> None:
        """Draw the transcript again, selecting reply token `select`, and the branch view."""
        self.output.show_transcript(self.core.transcript, self.core.assistant_name)
        if select is not None:
            self.output.select(self.core.transcript.event_index(select))
        self._update_branch_view()

    def _show_prompt_score(self) -> None:
        self.status.prompt_score = self.core.prompt_score()

    def _show_context_used(self) -> None:
        self.status.context = self.core.context_used()

    # --- view ------------------------------------------------------------------------------

    def on_output_view_token_selected(self, message: OutputView.TokenSelected) -> None:
        if not message.control.is_attached:  # the app shuts down
            return
        event = message.event
        text = self.core.token_text(event.token_id) if event is not None else None
        self.inspector.show(event, message.index, text)
        self._fit_sidebar(message.event is not None)
        self._update_branch_view()  # the fork nearest the selection is highlighted

    def on_output_view_prompt_token_selected(self, message: OutputView.PromptTokenSelected) -> None:
        if not message.control.is_attached:
            return
        token = message.token
        text = self.core.token_text(token.token_id)
        if text is None:  # a token of the previous model's vocabulary: the text it was scored as
            text = token.score.text if token.score is not None else ""
        self.inspector.show_prompt_token(token, message.index, text)
        self._fit_sidebar(True)

    def _fit_sidebar(self, inspecting: bool) -> None:
        """In a short terminal the sampling panel and an inspected token do not both fit:
        the panel folds to one row while a token is inspected, and the inspector lists fewer
        alternatives at once (its list scrolls)."""
        short = self.size.height < SHORT
        self.sampling_panel.fold(inspecting and short)
        self.inspector.set_class(short, "-short")

    def action_cycle_colouring(self) -> None:
        self.colouring = MODES[(MODES.index(self.colouring) + 1) % len(MODES)]
        self.notify(f"Colouring {MODE_LABELS[self.colouring]}", timeout=2)

    def watch_colouring(self, mode: str) -> None:
        self.output.colouring = mode
        self.query_one("#legend", ColourLegend).mode = mode
        for screen in self.screen_stack:
            if isinstance(screen, CompareScreen):
                screen.set_colouring(mode)
        self._update_settings(ui={**self.settings.ui, "colouring": mode})

    def on_compare_screen_cycle_colouring(self) -> None:
        self.action_cycle_colouring()

    def action_toggle_chat(self) -> None:
        why_not = self.core.mode_unavailable(not self.chat_mode)
        if why_not:
            self.notify(why_not, severity="warning")
            return
        left = "chat" if self.chat_mode else "completion"
        kept = not self.core.transcript.is_empty or bool(self.prompt_editor.text)
        self.chat_mode = not self.chat_mode
        if self.core.backend is not None and has_chat_template(self.core.backend.tokenizer):
            self._update_settings(ui={**self.settings.ui, "chat_mode": self.chat_mode})
        mode = "Chat mode: the box above sends messages" if self.chat_mode else "Completion mode"
        back = f"; the {left} is kept: F3 brings it back" if kept else ""
        self.notify(mode + back, timeout=4)
        self.prompt_editor.focus_text()  # typing goes to the new mode's box

    def watch_chat_mode(self, chat: bool) -> None:
        if self.core.chat_mode != chat:  # (an opened session brings its mode with it)
            # Each mode keeps its document, and the text in its box.
            self._editor_text[not chat] = self.prompt_editor.text
            self.core.set_mode(chat)
            self.prompt_editor.load_text(self._editor_text.pop(chat, ""))
            self.status.note = ""
            self.status.stats = None
        self._show_state()
        self.output.border_title = "Chat" if chat else "Output"
        self.output.placeholder = (
            "Type a message above and press ctrl+j (or F5) to send it." if chat else PLACEHOLDER
        )
        self._show_document()
        self.prompt_editor.set_chat(chat)
        self.status.mode = "chat" if chat else "completion"
        self._show_prompt_score()
        self._recount()

    def action_clear_output(self) -> None:
        self.core.clear()
        self._show_document()
        self.status.stats = None
        self.status.prompt_score = None
        self.status.note = ""
        self._show_state()
        self._recount()

    def action_copy_output(self) -> None:
        text = self.core.transcript.text()
        if not text:
            self.notify("The output is empty", severity="warning")
            return
        self.copy_to_clipboard(text)
        self.notify(f"Copied {len(text)} characters")

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.BINDINGS))

    def action_compare(self) -> None:
        """Open the side-by-side view on the current prompt (or chat)."""
        if self._try(self.core.require_model) is None:
            return
        try:
            request = request_from_core(self.core, self.prompt_editor.text)
        except ValueError as exc:
            self.notify(str(exc), severity="warning")
            return
        self.action_stop()  # a run would hold the engine until it ended, out of sight

        def closed(columns: list[ColumnSettings] | None) -> None:
            self._compare_columns = columns

        screen = CompareScreen(request, self.core, self._compare_columns, self.colouring)
        self.push_screen(screen, closed)

    def action_compare_interventions(self) -> None:
        """The prompt with and without the interventions, with the same seed, side by side
        in compare; the first token where they differ is selected in both."""
        if self._try(self.core.require_model) is None or self.screen is not self.screen_stack[0]:
            return
        interventions = self.core.interventions
        if not interventions:
            self.notify("No interventions yet: x in look inside's attribution, or 'Add "
                        "steering vector…' in the palette", severity="warning")  # fmt: skip
            return
        try:
            request = with_and_without(request_from_core(self.core, self.prompt_editor.text),
                                       interventions)  # fmt: skip
        except ValueError as exc:
            self.notify(str(exc), severity="warning")
            return
        self.action_stop()
        sampling = self.core.sampling
        seed = sampling.seed if sampling.seed is not None else secrets.randbelow(2**31)
        same = ColumnSettings.of(sampling.replace(seed=seed))  # the same noise in both
        screen = CompareScreen(request, self.core, [same, same], self.colouring)
        self.push_screen(screen)  # (its columns are not kept for F4)
        screen.call_after_refresh(screen.action_run)

    def action_look_inside(self) -> None:
        """Look inside the selected token's prediction (a compare column: its own selection)."""
        if self.screen is not self.screen_stack[0]:
            look = getattr(self.screen, "action_look_inside", None)  # the compare screen's
            if look is not None:
                look()
            return
        backend = self._backend_that_can("look_inside")
        if backend is None:
            return
        output = self.output
        selected_prompt = output.selected_prompt
        prompt = output.prompt_tokens[selected_prompt] if selected_prompt is not None else None
        try:
            request = main_view_request(self.core.transcript, output.selected, prompt,
                                        backend.model, backend.tokenizer, self.core.encode_chat,
                                        backend.cache)  # fmt: skip
        except ValueError as exc:
            self.notify(str(exc), severity="warning")
            return
        if self.core.interventions:  # look inside the model the runs use
            request = dataclasses.replace(request, interventions=self.core.interventions)
        self.push_screen(LookInsideScreen(request, self.core.engine_lock, self.core.threads))

    def action_sampler_view(self) -> None:
        """The sampler view of the selected token's step (tui/screens/sampler_view.py)."""
        if self.screen is not self.screen_stack[0]:
            return
        backend = self._try(self.core.require_model)
        if backend is None:
            return
        output = self.output
        selected_prompt = output.selected_prompt
        prompt = output.prompt_tokens[selected_prompt] if selected_prompt is not None else None
        core = self.core
        common = (core.engine_lock, core.threads, core.sampling, core.n_top, core.speculative)
        if backend.capabilities.why_not("look_inside"):  # a server: what its stream carried
            event = output.events[output.selected] if output.selected is not None else None
            if event is None:
                self.notify("On a server the sampler view shows an output token's alternatives: "
                            "select one", severity="warning")  # fmt: skip
                return
            text = self.inspector.token_text or event.text
            where = f"output token {output.selected + 1}"
            ask, note = self._server_sampler_step(output.selected, len(event.top))
            screen = SamplerViewScreen(None, *common, server_event=event, token_text=text,
                                       where=where, server_step=ask, server_note=note)  # fmt: skip
        else:
            try:
                request = main_view_step(core.transcript, output.selected, prompt,
                                         backend.model, backend.tokenizer, core.encode_chat,
                                         backend.cache)  # fmt: skip
            except ValueError as exc:
                self.notify(str(exc), severity="warning")
                return
            screen = SamplerViewScreen(request, *common)
        self.push_screen(screen, self._sampler_view_closed)

    def _server_sampler_step(
        self, selected: int, n_listed: int
    ) -> tuple[Callable[[SamplingParams], ServerStep] | None, str]:
        """On a server that says what its sampling does (llama-server), how to ask it for the
        selected output token's step under given settings (completion mode: in a chat the
        server renders the context itself); and the line saying what the view cannot show."""
        backend = self.core.backend
        note_of = getattr(backend, "sampler_note", None)
        ask = getattr(backend, "sampler_step", None)
        if note_of is None or ask is None:
            return None, SERVER_NOTE
        if not backend.kind.post_sampling or self.core.transcript.mode == "chat":
            return None, note_of(n_listed)
        try:
            lens = reply_token_request(self.core.transcript, selected, None, backend.tokenizer,
                                       self.core.encode_chat)  # fmt: skip
        except ValueError:
            return None, note_of(n_listed)
        context = list(lens.ids)
        return (lambda params: ask(context, params, SERVER_ROWS)), note_of(SERVER_ROWS)

    def _sampler_view_closed(self, result: Resampled | Expanded | None) -> None:
        if self._main_panel_stale:
            self._main_panel_stale = False
            self.sampling_panel.set_values(self.core.sampling, self.core.n_top)
        if isinstance(result, Resampled):
            index = self.core.transcript.event_index(result.position)
            assert index is not None
            self.branch_on(index, result.alternative)
        elif isinstance(result, Expanded):
            try:
                add_branches(self.core.transcript, result.position, result.branches)
            except (ValueError, IndexError) as exc:  # the reply changed meanwhile
                self.notify(f"The branches were not added: {exc}", severity="warning")
                return
            self._update_branch_view()
            n = len(result.branches)
            self.notify(f"{n} branches from token {result.position + 1}: pick one in the branch "
                        "view, or ] and [ to walk them", timeout=5)  # fmt: skip

    def on_attribution_table_ablation_toggled(
        self, message: AttributionTable.AblationToggled
    ) -> None:
        """x (m: to its mean) in look inside's attribution: the part is ablated in the runs
        that follow, and look inside traces again under the new set."""
        on = self._try(self.core.toggle_ablation, message.ablation)
        if on is None:
            return
        self._interventions_changed()
        part = message.ablation
        name = {"head": f"head {(part.head or 0) + 1}", "attn": "attention", "mlp": "MLP"}
        what = f"Block {part.layer + 1}'s {name[part.part]}"
        how = "set to its mean" if part.mean else "ablated"
        self.notify(f"{what} is {how} in the runs that follow (again: no longer)" if on
                    else f"{what} is no longer ablated")  # fmt: skip

    def on_intervention_list_removed(self, message: InterventionList.Removed) -> None:
        if self._try(self.core.remove_intervention, message.index):
            self._interventions_changed()

    def action_add_steering(self) -> None:
        """The palette's "Add steering vector…": a dialog of two texts, a block, a coefficient."""
        backend = self._backend_that_can("interventions")
        if backend is None:
            return

        def apply(add: str, sub: str, block: str, coef: str) -> str | None:
            try:
                self.core.add_steering(add, sub, block, coef)
            except GptTuiError as exc:
                return str(exc)
            self._interventions_changed()
            return None

        steering = self.core.interventions.steering
        self.push_screen(SteeringScreen(apply, backend.model.n_layer,
                                        steering.layer + 1 if steering else 0))  # fmt: skip

    def _interventions_changed(self) -> None:
        """The status line and the list say the new set; look inside, if open, traces again."""
        interventions = self.core.interventions
        self.status.interventions = self.core.interventions_line()
        self.query_one(InterventionList).show(entries(interventions))
        for screen in self.screen_stack:
            if isinstance(screen, LookInsideScreen):
                screen.retrace(interventions)

    # --- generation ------------------------------------------------------------------------

    def action_generate(self) -> None:
        run = self._try(self.core.generate, self.prompt_editor.text)
        if run is None:
            return
        if self.chat_mode:
            self.prompt_editor.clear()
        self._show_document()
        self._start(run)

    def action_continue_generation(self) -> None:
        run = self._try(self.core.continue_run)
        if run is not None:
            self._show_document()  # a model switch continues in a new turn
            self._start(run)

    def action_regenerate(self) -> None:
        run = self._try(self.core.regenerate)
        if run is not None:
            self._show_document()
            self._start(run)

    def _start(self, run: Run) -> None:
        self._show_state()
        self.status.stats = None
        self._show_prompt_score()  # None until this run's prompt is scored, if it must be
        self.status.note = self.core.note
        self._generation_worker(run)

    @work(thread=True, exclusive=True, group="generation", exit_on_error=False)
    def _generation_worker(self, run: Run) -> None:
        worker = get_current_worker()
        post = lambda event: self.post_message(msg.RunUpdate(event))  # noqa: E731
        self.core.execute(run, post, lambda: worker.is_cancelled)

    def on_run_update(self, message: msg.RunUpdate) -> None:
        event = message.event
        if not self.is_running or event.run_id != self.core.run_id:
            return
        if isinstance(event, RunNotice):
            self.notify(event.text, title="Generation", severity="warning", timeout=8)
            return
        reply = self.core.transcript.reply
        first = isinstance(event, TokensStreamed) and reply is not None and not reply.events
        changed = self.core.receive(event)
        if isinstance(event, TokensStreamed):
            self.output.add_tokens(event.events)
            if first:  # a regenerated reply forks at its first token
                self._update_branch_view()
            now = time.monotonic()
            if now - self._status_shown >= STATUS_INTERVAL:  # a speed changing at every batch
                self._status_shown = now  # is unreadable, and each change is a repaint
                self.status.stats = event.stats
                self._show_context_used()
            self.status.note = self.core.note
        elif isinstance(event, PromptScored):
            if changed:  # drawn again with the prompt as scored tokens; nothing generated yet
                self._show_document()
            self._show_prompt_score()
        elif isinstance(event, RunFinished):
            self._show_state()
            if event.stats.n_tokens:
                self.status.stats = event.stats
                self._show_context_used()
            if event.error:
                self.notify(event.error, severity="error", title="Generation failed", timeout=12)
            self._update_branch_view()
            self._recount()

    def action_stop(self) -> None:
        if self.core.stop():  # the run's worker ends within a token
            self._show_state()
        elif self.download_panel.showing:
            self.action_cancel_download()

    # --- branching -------------------------------------------------------------------------
    # The reply's continuations live in its turn's tree; these turn keys, the inspector's picks
    # and the branch view's rows into moves in it. In chat mode only the latest reply branches.

    def _selected_position(self) -> int | None:
        """The selected token's position in the reply (None: none, or not the reply's)."""
        return self.core.transcript.reply_position(self.output.selected)

    def action_pick_alternative(self, rank: int | None = None) -> None:
        """Highlight alternative `rank` (None: the token taken) of the selected token in the
        inspector, which gets the focus: enter (or a click) branches on it."""
        if self.output.selected is None:
            self.notify("Select a token of the reply first (click it, or ←/→ in the output)",
                        severity="warning")  # fmt: skip
            return
        if self._selected_position() is None:
            self.notify(NOT_THE_REPLY, severity="warning")
            return
        if not self.inspector.highlight_alternative(rank):
            self.notify(f"The inspector lists no alternative {rank}", severity="warning")

    def _picking_keys_apply(self) -> bool:
        """Digits and enter pick alternatives only from the output and the alternatives list:
        elsewhere they type text or values."""
        focused = self.focused
        return isinstance(focused, OutputView) or (
            isinstance(focused, OptionList) and focused.id == "alternatives"
        )

    def on_token_inspector_alternative_picked(
        self, message: TokenInspector.AlternativePicked
    ) -> None:
        if message.control is self.inspector:  # not an inspector of the compare screen
            self.branch_on(message.index, message.alternative)

    def branch_on(self, index: int, alternative: Alternative) -> None:
        """Rewrite the reply from output token `index` with `alternative` and go on from it."""
        position = self.core.transcript.reply_position(index)
        if position is None:
            self.notify(NOT_THE_REPLY, severity="warning")
            return
        try:
            branched = self.core.branch(position, alternative)
        except PlaygroundError as exc:
            self.notify(str(exc), severity="warning", timeout=3)
            return
        self._show_document(select=position)
        self.output.focus()
        if branched.existing:
            self.notify(f"Back to the branch that took “{visible_token(alternative.text)}” here",
                        timeout=3)  # fmt: skip
        if branched.run is not None:
            self._start(branched.run)
        else:
            self._show_state()

    def action_sibling(self, step: int) -> None:
        """Show the previous (-1) or next (1) branch at the fork nearest above the selected
        token (no selection: the last fork)."""
        node = self.core.sibling(self._selected_position(), step)
        if node is None:
            self.notify("No other branch here: pick an alternative in the inspector to make one",
                        timeout=3)  # fmt: skip
            return
        self.show_branch(node)

    def action_branch_point(self, direction: int) -> None:
        """Select the token where the reply forks before (-1) or after (1) the selected one."""
        target = self.core.next_fork(self._selected_position(), direction)
        if target is None:
            where = "above" if direction < 0 else "below"
            self.notify(f"No branch point {where} this token", timeout=3)
            return
        self.output.select(self.core.transcript.event_index(target))

    def on_branch_view_branch_selected(self, message: BranchView.BranchSelected) -> None:
        self.show_branch(message.node)

    def show_branch(self, node: int) -> None:
        """Show the reply's branch through `node`, with its first token selected."""
        depth = self.core.show_branch(node)
        if depth is not None:
            self._show_document(select=depth)
            self._show_state()

    def _update_branch_view(self) -> None:
        reply = self.core.transcript.reply
        self.branch_view.show(reply.tree if reply is not None else None, self._selected_position())

    # --- models ----------------------------------------------------------------------------

    def switch_model(self, name: str, *, confirmed: bool = False) -> None:
        """Load `name` (catalog name, path, ...) off the UI thread; an uncached catalog model
        is downloaded only after the user agrees."""
        question = None if confirmed else download_question(name)
        if question is not None:
            title, text, verb = question

            def answered(yes: bool | None) -> None:
                if yes:
                    self.switch_model(name, confirmed=True)
                elif self.core.backend is None:
                    self.core.load_failed(self.core.load_id)
                    self._show_state()

            self.push_screen(Confirm(title, text, yes=verb), answered)
            return
        load_id = self.core.begin_load()  # a newer request replaces a load in progress
        self.download_panel.new_load()
        self.status.loading_text = self._measuring(name)
        if self.core.backend is None:
            self.status.model = name
        self._show_state()
        self._load_worker(load_id, name)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load_worker(self, load_id: int, name: str) -> None:
        progress = lambda p: self.post_message(msg.DownloadProgress(load_id, p))  # noqa: E731
        self.post_message(msg.LoadEnded(self.core.load(load_id, name, progress, self._api_key)))

    def _measuring(self, name: str) -> str:
        """What the status says while `name` loads, when that says more than "loading"."""
        if not self.core.plan_expected(name):
            return ""
        short = name.rstrip("/").rsplit("/", 1)[-1]
        return f"measuring how this machine runs {short} fastest, once…"

    def on_download_progress(self, message: msg.DownloadProgress) -> None:
        if message.load_id == self.core.load_id and self.is_running:
            p = message.progress
            getting = f"getting {p.model} ready…" if p.phase != "done" else ""
            self.status.loading_text = getting or self._measuring(p.model)
            showing = self.download_panel.showing
            self.download_panel.report(message.progress)
            if showing != self.download_panel.showing:
                self.refresh_bindings()  # escape cancels it

    def on_load_ended(self, message: msg.LoadEnded) -> None:
        if not self.is_running:
            return
        loaded = message.loaded
        first = self.core.backend is None
        opening = self.core.pending_session
        if not self.core.finish_load(loaded):
            return
        self.download_panel.stop()
        if loaded.backend is None:
            self._load_failed(loaded, opening is not None)
        else:
            self._model_loaded(loaded, first, opening is not None)

    def _model_loaded(self, loaded: Loaded, first: bool, opening: bool) -> None:
        backend = loaded.backend
        assert backend is not None
        self.status.model = backend.name
        self._interventions_changed()  # (a new model starts without them)
        self.sub_title = backend.name
        caps = backend.capabilities
        self.sampling_panel.show_available(caps)
        self.inspector.capabilities = caps
        self.output.exact_ranks = caps.exact_ranks
        self.status.backend = self.core.server_line()
        if opening and self.core.transcript.tokenizer is backend.tokenizer:
            chat = self.core.chat_mode  # the session's own mode (its transcript is bound)
        else:
            chat = self.core.chat_by_default(self.settings.ui.get("chat_mode", True))
        if chat != self.chat_mode:
            # The other mode's document; what was typed while loading stays in the box.
            self._editor_text[chat] = self.prompt_editor.text
            self.chat_mode = chat
            self._editor_text.pop(not chat, None)
        self._show_document()
        self._show_prompt_score()
        self._show_state()
        self.status.context = None
        self._update_settings(model=model_setting(loaded.name))
        self._recount()
        if not first:
            self.notify(f"Loaded {backend.name}", timeout=3)
        plan = self.core.plan_notice()
        if plan is not None:
            text, warning = plan
            self.notify(text, severity="warning" if warning else "information",
                        timeout=10 if warning else 6)  # fmt: skip

    def _load_failed(self, loaded: Loaded, opening: bool) -> None:
        backend = self.core.backend
        keep = f"; still using {backend.name}" if backend is not None else ""
        if loaded.cancelled:
            self.notify(
                f"Cancelled getting {loaded.name} ready; a download resumes where it stopped "
                f"next time{keep}",
                title="Cancelled",
            )
        else:
            self.notify(
                loaded.error + keep, severity="error", title=f"Cannot load {loaded.name}",
                timeout=12,
            )  # fmt: skip
        if backend is None:
            self.status.model = ""
        self._show_state()
        if opening:
            self.notify(
                f"The session is shown without its model ({loaded.name}): its tokens can be "
                "inspected; pick a model (ctrl+o) to generate",
                severity="warning",
                title="Session opened",
                timeout=12,
            )

    def action_cancel_download(self) -> None:
        if not self.core.cancel_load():
            self.notify("Nothing is being downloaded")
            return
        self.download_panel.show_cancelling()

    def on_download_panel_cancel_pressed(self) -> None:
        self.action_cancel_download()

    def action_pick_model(self) -> None:
        def chosen(name: str | None) -> None:
            if name:
                self.switch_model(name)

        self.push_screen(ModelPicker(current=self.core.model_name, api_key=self._api_key), chosen)

    # --- sessions --------------------------------------------------------------------------

    def current_session(self) -> Session:
        """What the app shows, as a session."""
        return self.core.current_session(self.prompt_editor.text, self.requested_model)

    def action_save_session(self) -> None:
        default = self.core.session_path or default_session_path()

        def chosen(path: str | None) -> None:
            if path:
                self.save_session(path)

        self.push_screen(SessionPathScreen("save", str(default)), chosen)

    def save_session(self, path: str | Path) -> Path | None:
        """Write the session to `path` (and Markdown and a page next to it); a failure is a
        notification."""
        try:
            json_path, md_path = self.core.save_session(path, self.prompt_editor.text)
        except SessionFileError as exc:
            self.notify(str(exc), severity="error", title="Session not saved", timeout=12)
            return None
        shared = f"{md_path.name} and {md_path.with_suffix('.html').name}"
        self.notify(f"{json_path}\n(and {shared} for sharing)", title="Session saved")
        return json_path

    def action_open_session(self) -> None:
        default = self.core.session_path or default_session_dir()

        def chosen(path: str | None) -> None:
            if path:
                self.open_session(path)

        self.push_screen(SessionPathScreen("open", str(default)), chosen)

    def open_session(self, source: Session | str | Path) -> bool:
        """Show a saved session and load its model; a bad file is a notification."""
        try:
            opened = self.core.open_session(source)
        except SessionFileError as exc:
            self.notify(str(exc), severity="error", title="Cannot open the session", timeout=12)
            return False
        self._show_opened(opened)
        if opened.load:
            self.switch_model(opened.load)
        return True

    def _show_opened(self, opened: Opened) -> None:
        """Show an opened session: its mode, settings, prompt box and transcript."""
        session = opened.session
        chat = session.chat is not None
        self.chat_mode = chat  # the core holds the session's transcript, in its mode
        self.sampling_panel.set_values(self.core.sampling, self.core.n_top)
        editor = session.extra.get("editor")
        if not isinstance(editor, str):
            editor = "" if chat else session.prompt
        self.prompt_editor.load_text(editor)
        self._show_document()
        self.status.stats = None
        self.status.note = ""
        self._show_prompt_score()  # the prompt's perplexity, from the scores saved
        self._show_state()
        if not session.model:
            self.notify("The session names no model: its text is shown, pick a model to go on",
                        severity="warning")  # fmt: skip
        else:
            self._recount()

    # --- sampling settings -----------------------------------------------------------------

    def on_sampling_panel_changed(self, message: SamplingPanel.Changed) -> None:
        self.core.sampling = message.params  # read by the running run before every token
        self.core.n_top = message.n_top
        if message.control is not None and message.control is not self.sampling_panel:
            # the sampler view's: the main panel, hidden under it, is set when it closes (setting
            # every slider there at each move would cost the view tens of milliseconds a move)
            self._main_panel_stale = True
        self._update_settings(sampling=message.params, n_top=message.n_top)

    def on_sampling_panel_speculative_changed(
        self, message: SamplingPanel.SpeculativeChanged
    ) -> None:
        self.core.speculative = message.choice  # from the next generation on
        self._update_settings(speculative=message.choice)

    def speculation_unavailable(self, choice: str) -> str | None:
        """Why speculative decoding with `choice` cannot work now (None: it can)."""
        try:
            return self.core.draft_unavailable(choice)
        except PlaygroundError as exc:  # no model yet
            return str(exc)

    def set_speculative(self, choice: str) -> None:
        """Speculative decoding off, by prompt lookup, or with a draft model (the palette); a
        draft model that cannot work with this model is refused, with the reason."""
        why_not = self.speculation_unavailable(choice)
        if why_not:
            self.notify(why_not, severity="warning", title=f"Speculative decoding: not {choice}")
            return
        self.core.speculative = choice
        self.sampling_panel.set_speculative(choice)
        self._update_settings(speculative=choice)
        self.notify(f"Speculative decoding: {choice} (from the next generation)", timeout=3)

    def action_reset_sampling(self) -> None:
        self.core.sampling = SamplingParams()
        self.core.n_top = UserSettings().n_top
        self.sampling_panel.set_values(self.core.sampling, self.core.n_top)
        self._update_settings(sampling=self.core.sampling, n_top=self.core.n_top)
        self.notify("Sampling settings back to their defaults", timeout=3)

    def _set_sampling(self, params: SamplingParams, note: str) -> None:
        """Settings chosen by a command: shown in every panel, kept, and said."""
        self.core.sampling = params
        self.sampling_panel.set_values(params, self.core.n_top)
        if isinstance(self.screen, SamplerViewScreen):
            self.screen.set_params(params)
        self._update_settings(sampling=params)
        self.notify(note, timeout=3)

    def load_preset(self, name: str) -> None:
        """Sample as preset `name` says (built in: greedy, default, model; or saved); the seed,
        the length and the stop strings stay."""
        backend = self.core.backend
        try:
            preset = find_preset(name, getattr(backend, "path", None))
        except GptTuiError as exc:
            self.notify(str(exc), severity="warning", title="Preset")
            return
        now = self.core.sampling
        base = SamplingParams(seed=now.seed, max_tokens=now.max_tokens, stop=now.stop)
        self._set_sampling(preset.sampling(base), f"Preset {name} ({preset.source})")

    def action_save_preset(self) -> None:
        def chosen(name: str | None) -> None:
            if not name:
                return
            try:
                path = save_preset(name, self.core.sampling)
            except GptTuiError as exc:
                self.notify(str(exc), severity="error", title="Preset not saved")
                return
            self.notify(f"Saved the sampling settings as {name.strip()} in {path}", timeout=4)

        self.push_screen(PresetNameScreen(), chosen)

    def action_temperature_last(self) -> None:
        """Temperature after the truncations (llama.cpp's and text-generation-webui's
        "temperature last"), or back in its place."""
        if isinstance(self.screen, SamplerViewScreen):
            self.screen.action_temperature_last()
            return
        now = self.core.sampling
        last = temperature_last(now.sampler_order)
        if now.sampler_order == last:
            order = tuple(n for n in DEFAULT_ORDER if n in set(last))
            self._set_sampling(now.replace(sampler_order=order), "Temperature in its place")
        else:
            self._set_sampling(now.replace(sampler_order=last), "Temperature last")

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

    def _recount(self) -> None:
        """The editor counts its text again: the model or the conversation changed."""
        self.prompt_editor.count_with(self.core.prompt_counter())

    def on_prompt_editor_counted(self, message: PromptEditor.Counted) -> None:
        count = message.count
        status = next(self.query("#status").results(StatusBar), None)
        if status is None:  # a count that arrives while the app quits, after its screen went
            return
        if self.core.transcript.is_empty:  # else the status shows what the last run used
            status.context = (min(count.n_context, count.n_ctx), count.n_ctx)

    # --- quitting --------------------------------------------------------------------------

    async def on_unmount(self) -> None:
        """Stop every worker thread and wait for it: a generation stops within a token, a
        download within a chunk."""
        self.core.cancel_all_loads()
        self.workers.cancel_all()
        if self._save_timer is not None:
            self._save_timer.stop()
            self._save_settings()
        self.core.threads.wait_idle(QUIT_TIMEOUT)
