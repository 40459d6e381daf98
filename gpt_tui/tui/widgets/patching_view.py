"""Look inside's patching tab: activation patching from the examined text (CLEAN) into one the
user types (CORRUPT, as many tokens), as heat maps of blocks x positions (the residual entering
each block) and blocks x heads with the MLPs beside them (playground/patching.py).

The sweep is many passes (seconds on GPT-2 124M): it runs in a thread worker with a progress
bar, and `cancel` (escape, on the screen) stops it at its next block; the UI never waits.
Answer and against default to the model's top next token after CLEAN and after CORRUPT.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Group
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, ProgressBar, Static
from textual.worker import get_current_worker

from gpt_tui.display import patch_colour, visible_token
from gpt_tui.engine.hooked import Interventions, with_interventions
from gpt_tui.errors import GptTuiError
from gpt_tui.playground.look_inside import one_token
from gpt_tui.playground.patching import PatchReport, patch_ids


class PatchCancelled(Exception):
    """The sweep was stopped (escape)."""


class PatchingView(Vertical):
    """CORRUPT, answer and against fields, a progress bar, and the sweep's heat maps."""

    DEFAULT_CSS = """
        PatchingView {
            height: 1fr;
        }
        PatchingView .patch-row {
            height: 1;
            padding: 0 1;
        }
        PatchingView .patch-row Label {
            width: 9;
            color: $text-muted;
        }
        PatchingView .patch-row Input {
            width: 1fr;
            height: 1;
            border: none;
            padding: 0;
        }
        PatchingView #patch-answer, PatchingView #patch-against {
            width: 1fr;
        }
        PatchingView #patch-note {
            height: auto;
            padding: 0 1;
            color: $text-muted;
        }
        PatchingView #patch-note.-error {
            color: $warning;
        }
        PatchingView ProgressBar {
            height: 1;
            padding: 0 1;
        }
        PatchingView ProgressBar.-idle {
            display: none;
        }
        PatchingView #patch-maps {
            height: 1fr;
        }
    """

    class Progressed(Message):
        def __init__(self, done: int, total: int) -> None:
            super().__init__()
            self.done, self.total = done, total

    class Finished(Message):
        """The sweep's report, or why there is none (`error`; "" when cancelled)."""

        def __init__(self, report: PatchReport | None, error: str = "") -> None:
            super().__init__()
            self.report, self.error = report, error

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model: Any = None
        self.tokenizer: Any = None
        self.clean: tuple[int, ...] = ()
        self.interventions: Interventions | None = None
        self.report: PatchReport | None = None
        self.running = False

    def compose(self) -> ComposeResult:
        with Horizontal(classes="patch-row"):
            yield Label("CORRUPT")
            yield Input("", placeholder="the text with one thing changed", id="patch-corrupt")
        with Horizontal(classes="patch-row"):
            yield Label("answer")
            yield Input("", placeholder="top after CLEAN", id="patch-answer")
            yield Label(" against")
            yield Input("", placeholder="top after CORRUPT", id="patch-against")
        yield Static("", id="patch-note")
        yield ProgressBar(show_eta=False, classes="-idle", id="patch-progress")
        with VerticalScroll(id="patch-maps"):
            yield Static("", id="patch-tables")

    def setup(
        self,
        model: Any,
        tokenizer: Any,
        clean: Sequence[int],
        interventions: Interventions | None = None,
    ) -> None:
        """Patch from `clean` (the examined context) with `model` under `interventions` (the
        runs' own: the sweep patches the model they run)."""
        self.model, self.tokenizer, self.clean = model, tokenizer, tuple(clean)
        self.interventions = interventions
        corrupt = self.query_one("#patch-corrupt", Input)
        if not corrupt.value:  # a start to edit: change a name, keep the length
            corrupt.value = tokenizer.decode(list(clean))
        self._note(f"CLEAN: the text up to the examined position ({len(clean)} tokens). Change "
                   "CORRUPT (as many tokens), enter runs the sweep · escape stops it")  # fmt: skip

    def _note(self, text: str, error: bool = False) -> None:
        note = self.query_one("#patch-note", Static)
        note.update(text)
        note.set_class(error, "-error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.start()

    def start(self) -> None:
        """Run the sweep with the fields as they are (a line under them says what is wrong)."""
        if self.model is None or self.running:
            return
        corrupt_text = self.query_one("#patch-corrupt", Input).value
        try:
            corrupt = self.tokenizer.encode(corrupt_text)
            answer, against = (self._token(f"#patch-{k}", k) for k in ("answer", "against"))
        except GptTuiError as exc:
            self._note(str(exc), error=True)
            return
        if len(corrupt) != len(self.clean):  # said at once, before any pass
            pieces = "|".join(visible_token(self.tokenizer.token_text(i)) for i in corrupt)
            self._note(f"CORRUPT has {len(corrupt)} tokens, CLEAN {len(self.clean)}: they must "
                       f"be as many ({pieces})", error=True)  # fmt: skip
            return
        self.running = True
        bar = self.query_one(ProgressBar)
        bar.update(total=None, progress=0)
        bar.remove_class("-idle")
        self._note("patching… escape stops")
        self._sweep(tuple(corrupt), answer, against)

    def _token(self, selector: str, what: str) -> int | None:
        text = self.query_one(selector, Input).value
        return one_token(self.tokenizer, text, what) if text else None

    def cancel(self) -> None:
        """Stop the sweep at its next block (the passes before the first finish first)."""
        self.workers.cancel_group(self, "patching")
        self._note("stopping…")

    @work(thread=True, exclusive=True, group="patching", exit_on_error=False)
    def _sweep(self, corrupt: tuple[int, ...], answer: int | None, against: int | None) -> None:
        worker = get_current_worker()

        def progress(done: int, total: int) -> None:
            if worker.is_cancelled:
                raise PatchCancelled
            self.post_message(self.Progressed(done, total))

        try:
            model = with_interventions(self.model, self.interventions, self.clean)
            report = patch_ids(model, self.tokenizer, self.clean, corrupt, answer, against,
                               progress=progress)  # fmt: skip
        except PatchCancelled:
            self.post_message(self.Finished(None))
        except GptTuiError as exc:
            self.post_message(self.Finished(None, str(exc)))
        except Exception as exc:  # noqa: BLE001 - shown in the tab, the app goes on
            self.post_message(self.Finished(None, f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(self.Finished(report))

    def on_patching_view_progressed(self, message: Progressed) -> None:
        self.query_one(ProgressBar).update(total=message.total, progress=message.done)

    def on_patching_view_finished(self, message: Finished) -> None:
        self.running = False
        self.query_one(ProgressBar).add_class("-idle")
        if message.report is None:
            self._note(message.error or "stopped: enter runs the sweep again",
                       error=bool(message.error))  # fmt: skip
            return
        self.report = report = message.report
        p = report.patching
        answer, against = (visible_token(t.text) for t in (report.answer, report.against))
        self.query_one("#patch-answer", Input).value = report.answer.text
        self.query_one("#patch-against", Input).value = report.against.text
        self._note(f"logit “{answer}” − “{against}”: clean {p.clean:+.2f}, corrupt "
                   f"{p.corrupted:+.2f} · x100: 100 restores clean, 0 keeps corrupt")  # fmt: skip
        self.query_one("#patch-tables", Static).update(heat_maps(report))


def _cell(value: float, width: int = 4) -> Text:
    style = Style(bgcolor=patch_colour(float(value)), color="white")
    return Text(f"{round(100 * value):>{width}}", style=style)


def heat_maps(report: PatchReport) -> Group:
    """Blocks x positions (the residual entering each block), then blocks x heads and the
    MLPs; blocks and heads from 1, as look inside counts them."""
    p = report.patching
    n_layer, n_tok = p.resid_pre.shape
    resid = Table(title="Residual entering each block, by position", title_justify="left",
                  show_edge=False, padding=0, collapse_padding=True, box=None)  # fmt: skip
    resid.add_column("block", justify="right")
    for pos, (c, d) in enumerate(zip(report.clean, report.corrupt, strict=True)):
        header = f"{pos:>4}" if c.id == d.id else Text(f"{pos:>4}", style="bold underline")
        resid.add_column(header, justify="right")
    for layer in range(n_layer):
        resid.add_row(f"{layer + 1} ", *(_cell(v) for v in p.resid_pre[layer]))
    heads = Table(title="Each head's output, all positions; the MLP's", title_justify="left",
                  show_edge=False, padding=0, collapse_padding=True, box=None)  # fmt: skip
    heads.add_column("block", justify="right")
    for h in range(p.heads.shape[1]):
        heads.add_column(f"{'H' + str(h + 1):>4}", justify="right")
    heads.add_column(f"{'MLP':>5}", justify="right")
    for layer in range(n_layer):
        heads.add_row(f"{layer + 1} ", *(_cell(v) for v in p.heads[layer]),
                      Text(" ") + _cell(p.mlps[layer]))  # fmt: skip
    changed = "  ".join(
        f"{i}:{visible_token(c.text)}→{visible_token(d.text)}"
        for i, (c, d) in enumerate(zip(report.clean, report.corrupt, strict=True))
        if c.id != d.id
    )
    return Group(resid, Text(f"positions changed: {changed}", style="dim"), Text(), heads)
