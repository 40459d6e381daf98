"""Look inside's patching tab (tui/widgets/patching_view.py): CLEAN is the examined context,
CORRUPT typed (as many tokens, else one line), answer and against default to the model's top
tokens; the sweep runs in a worker and draws heat maps."""

from __future__ import annotations

import io

import numpy as np
from rich.console import Console
from test_look_inside import SIZE, generate_and_select, look_inside
from textual.widgets import Input, ProgressBar
from tui_helpers import wait_until

from gpt_tui.engine.hooked import HookedModel
from gpt_tui.engine.interventions import Ablation, ablation_hooks, patch
from gpt_tui.tui.app import GptTuiApp
from gpt_tui.tui.widgets.patching_view import PatchingView, heat_maps


def note(view: PatchingView) -> str:
    return str(view.query_one("#patch-note").render())


async def test_the_patching_tab(tiny_model_dir, deterministic_settings) -> None:
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await generate_and_select(pilot, 4)
        screen = await look_inside(pilot)
        await pilot.press("4")
        view = screen.query_one(PatchingView)
        corrupt = view.query_one("#patch-corrupt", Input)
        await wait_until(pilot, lambda: corrupt.has_focus)
        model, tokenizer = app.core.backend.model, app.core.backend.tokenizer
        clean = list(screen.request.ids)
        assert corrupt.value == tokenizer.decode(clean)  # a start to edit
        assert "CLEAN" in note(view) and f"{len(clean)} tokens" in note(view)

        corrupt.value = tokenizer.decode(clean) + " and more words"
        await pilot.press("enter")
        assert "CORRUPT has" in note(view) and "must be as many" in note(view)
        assert not view.running and view.report is None

        other = list(clean)
        other[1] = tokenizer.encode(" dog")[0] if other[1] != tokenizer.encode(" dog")[0] else 11
        corrupt.value = tokenizer.decode(other)
        assert tokenizer.encode(corrupt.value) == other
        await pilot.press("enter")
        await wait_until(pilot, lambda: view.report is not None)
        await pilot.pause()
        report = view.report
        answer = int(np.argmax(model.forward(clean)[-1]))  # the defaults: top after each text
        against = int(np.argmax(model.forward(other)[-1]))
        assert (report.answer.id, report.against.id) == (answer, against)
        expected = patch(model, clean, other, answer, against)
        np.testing.assert_allclose(report.patching.resid_pre, expected.resid_pre, atol=1e-5)
        np.testing.assert_allclose(report.patching.heads, expected.heads, atol=1e-5)
        assert report.patching.resid_pre.shape == (model.n_layer, len(clean))
        assert view.query_one(ProgressBar).has_class("-idle")  # shown only while it runs
        assert "clean" in note(view) and "corrupt" in note(view)
        console = Console(width=SIZE[0], record=True, file=io.StringIO())
        console.print(heat_maps(report))
        tables = console.export_text()
        assert "Residual entering each block" in tables and "MLP" in tables
        assert view.query_one("#patch-tables").size.height >= 2 * model.n_layer + 4  # drawn

        view.query_one("#patch-against", Input).value = "two tokens here"
        corrupt.focus()
        await pilot.press("enter")
        assert "is not one token" in note(view)


async def test_patching_runs_under_the_interventions(tiny_model_dir, deterministic_settings):
    """The sweep patches the model the runs use: under an ablation, the ablated model."""
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await generate_and_select(pilot, 4)
        app.core.toggle_ablation(Ablation(0, "mlp"))
        screen = await look_inside(pilot)
        await pilot.press("4")
        view = screen.query_one(PatchingView)
        model, tokenizer = app.core.backend.model, app.core.backend.tokenizer
        clean = list(screen.request.ids)
        other = [*clean[:-1], 11 if clean[-1] != 11 else 12]
        view.query_one("#patch-corrupt", Input).value = tokenizer.decode(other)
        view.start()
        await wait_until(pilot, lambda: view.report is not None)
        hooked = HookedModel(model, ablation_hooks(model, [Ablation(0, "mlp")]))
        r = view.report
        expected = patch(hooked, clean, other, r.answer.id, r.against.id)
        np.testing.assert_allclose(r.patching.mlps, expected.mlps, atol=1e-5)
        assert r.patching.mlps[0] == 0.0 or np.isclose(r.patching.mlps[0], 0.0, atol=1e-6)


def test_patching_tab_snapshot(snap_compare, tiny_model_dir, deterministic_settings) -> None:
    """The patching tab at 80x24 after a sweep (the trace's timing blanked: it varies)."""

    async def run_before(pilot) -> None:
        app = pilot.app
        await generate_and_select(pilot, 4)
        screen = await look_inside(pilot)
        await pilot.press("4")
        view = screen.query_one(PatchingView)
        tokenizer = app.core.backend.tokenizer
        other = list(screen.request.ids)
        other[1] = 11 if other[1] != 11 else 12
        view.query_one("#patch-corrupt", Input).value = tokenizer.decode(other)
        view.start()
        await wait_until(pilot, lambda: view.report is not None)
        screen.query_one("#lens-status").update("traced")
        screen.set_focus(None)  # no blinking cursor
        app.clear_notifications()
        await pilot.pause()

    assert snap_compare(GptTuiApp(model=tiny_model_dir), terminal_size=(80, 24),
                        run_before=run_before)  # fmt: skip
