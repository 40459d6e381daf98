"""Interventions in the app: x on a head or an MLP in look inside's attribution tab ablates it,
the status line says so, generation runs under it and look inside reads the ablated model."""

from __future__ import annotations

import numpy as np
import pytest
from test_look_inside import SIZE, generate_and_select, look_inside, notes
from textual.widgets import Input
from tui_helpers import generate_from, wait_loaded, wait_until

from gpt_tui.engine import SamplingParams
from gpt_tui.engine.generate import generate_batch
from gpt_tui.engine.hooked import HookedModel
from gpt_tui.engine.interventions import Ablation, ablation_hooks, steering_hooks, steering_vector
from gpt_tui.settings import UserSettings, save_settings
from gpt_tui.tui.app import GptTuiApp
from gpt_tui.tui.screens.compare import CompareScreen
from gpt_tui.tui.screens.steering import SteeringScreen
from gpt_tui.tui.widgets.attribution_table import AttributionTable
from gpt_tui.tui.widgets.intervention_list import InterventionList
from gpt_tui.tui.widgets.status_bar import StatusBar

PROMPT = "The meaning of life is"


async def test_x_ablates_the_part_under_the_cursor(tiny_model_dir, deterministic_settings) -> None:
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await generate_and_select(pilot, 0)
        plain = [e.token_id for e in app.output.events]
        screen = await look_inside(pilot)
        await pilot.press("3")
        table = screen.query_one(AttributionTable)
        await wait_until(pilot, lambda: table.has_focus)
        await pilot.press("x")  # on the "embed" row: nothing to ablate
        assert any("Put the cursor on a head's" in n for n in notes(app))
        await pilot.press("h")  # a column per head
        table.move_cursor(row=2, column=2)  # block 2 (from 1), head 2
        await pilot.press("x")
        assert app.core.interventions.ablations == (Ablation(1, "head", 1),)
        table.move_cursor(row=1, column=table.get_column_index("mlp"))
        await pilot.press("x")
        assert app.core.interventions.ablations == (Ablation(1, "head", 1), Ablation(0, "mlp"))
        status = str(app.query_one(StatusBar).render())
        assert "ablated L2 H2, L1 MLP" in status
        await pilot.press("x")  # again: no longer
        assert app.core.interventions.ablations == (Ablation(1, "head", 1),)

        await pilot.press("escape")
        await generate_from(pilot, PROMPT)
        ablated = [e.token_id for e in app.output.events]
        model, tokenizer = app.core.backend.model, app.core.backend.tokenizer
        ids = tokenizer.encode(PROMPT)
        hooks = ablation_hooks(model, [Ablation(1, "head", 1)])
        expected: list[int] = []
        for _ in range(len(ablated)):  # greedy, full passes under the hook
            expected.append(int(np.argmax(model.forward([*ids, *expected], hooks=hooks)[-1])))
        assert ablated == expected and ablated != plain

        app.output.focus()
        app.output.select(3)
        await pilot.pause()
        screen = await look_inside(pilot)  # under the ablation: head 2 of block 2 writes nothing
        assert screen.report.attribution.heads[1, 1] == 0.0
        assert screen.report.layers[-1].score.prob == pytest.approx(
            app.output.events[3].prob, rel=1e-4
        )  # the distribution the ablated run drew from


async def test_the_list_mean_ablation_and_look_inside_tracing_again(
    tiny_model_dir, deterministic_settings
) -> None:
    """m sets a part to its mean (x on it again switches to zero); look inside traces again at
    once under the new set; the list above the sampling panel shows each entry while any is
    active, and delete removes one."""
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await generate_and_select(pilot, 2)
        listed = app.query_one(InterventionList)
        assert not listed.display  # nothing active: not shown
        screen = await look_inside(pilot)
        before = screen.report
        await pilot.press("3", "h")
        table = screen.query_one(AttributionTable)
        await wait_until(pilot, lambda: table.has_focus)
        table.move_cursor(row=2, column=2)  # block 2 (from 1), head 2
        assert before.attribution.heads[1, 1] != 0.0
        await pilot.press("m")
        assert app.core.interventions.ablations == (Ablation(1, "head", 1, mean=True),)
        await wait_until(pilot, lambda: screen.report is not before)  # traced again
        mean_report = screen.report
        assert mean_report.attribution.total == pytest.approx(mean_report.attribution.logit,
                                                              abs=1e-4)  # fmt: skip
        assert "L2 H2 (mean)" in str(screen.query_one("#lens-status").render())
        await pilot.press("x")  # the same part, to zero: switched, not added
        assert app.core.interventions.ablations == (Ablation(1, "head", 1),)
        await wait_until(pilot, lambda: screen.report is not mean_report)
        assert screen.report.attribution.heads[1, 1] == 0.0
        table.move_cursor(row=1, column=table.get_column_index("mlp"))
        await pilot.press("x")
        await pilot.press("escape")
        await pilot.pause()
        assert listed.display
        assert [str(listed.get_option_at_index(i).prompt) for i in range(listed.option_count)] \
            == ["ablate L2 H2", "ablate L1 MLP"]  # fmt: skip
        listed.focus()
        listed.highlighted = 0
        await pilot.press("delete")
        assert app.core.interventions.ablations == (Ablation(0, "mlp"),)
        assert "ablated L1 MLP" in str(app.query_one(StatusBar).render())
        await pilot.press("delete")
        await pilot.pause()
        assert not app.core.interventions and not listed.display
        assert "ablated" not in str(app.query_one(StatusBar).render())


async def test_the_palette_adds_a_steering_vector_that_generation_runs_under(
    tiny_model_dir, deterministic_settings
) -> None:
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await generate_from(pilot, PROMPT)
        plain = [e.token_id for e in app.output.events]
        await app.run_action("add_steering")
        await wait_until(pilot, lambda: isinstance(app.screen, SteeringScreen))
        dialog = app.screen
        await wait_until(pilot, lambda: bool(dialog.query("#steering-coef")))
        dialog.query_one("#steering-add", Input).value = "I love this"
        dialog.query_one("#steering-sub", Input).value = "I hate this"
        dialog.query_one("#steering-block", Input).value = "9"  # the tiny model has 2
        dialog.query_one("#steering-coef", Input).value = "8"
        dialog.query_one("#steering-coef", Input).focus()
        await pilot.press("enter")
        assert "the model's blocks are 1-2" in str(dialog.query_one("#steering-note").render())
        assert app.screen is dialog and not app.core.interventions  # nothing applied
        dialog.query_one("#steering-block", Input).value = "2"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen is not dialog)
        steering = app.core.interventions.steering
        assert steering is not None and (steering.layer, steering.coef) == (1, 8.0)
        assert "steered at L2 x 8" in str(app.query_one(StatusBar).render())
        assert app.query_one(InterventionList).display

        await generate_from(pilot, PROMPT)
        steered = [e.token_id for e in app.output.events]
        model, tokenizer = app.core.backend.model, app.core.backend.tokenizer
        ids = tokenizer.encode(PROMPT)
        vector = steering_vector(model, tokenizer.encode("I love this"),
                                 tokenizer.encode("I hate this"), 1)  # fmt: skip
        hooks = steering_hooks(1, vector, 8.0)
        expected: list[int] = []
        for _ in range(len(steered)):  # greedy, full passes under the hook
            expected.append(int(np.argmax(model.forward([*ids, *expected], hooks=hooks)[-1])))
        assert steered == expected and steered != plain

        app.query_one(InterventionList).focus()
        await pilot.press("delete")  # steering removed: the kept cache was the steered set's
        await generate_from(pilot, PROMPT)
        assert [e.token_id for e in app.output.events] == plain


async def test_with_and_without_side_by_side_in_compare(tiny_model_dir, gpt_tui_home) -> None:
    """shift+F4: two columns of the prompt, the first without the interventions and the
    second with them, sampled with the same seed; the first differing token is selected."""
    save_settings(UserSettings(sampling=SamplingParams(temperature=1.0, seed=7, max_tokens=16)))
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await pilot.press("shift+f4")  # nothing to compare yet
        assert any("No interventions yet" in n for n in notes(app))
        ablation = Ablation(1, "head", 1)
        app.core.toggle_ablation(ablation)
        app.prompt_editor.load_text(PROMPT)
        await pilot.press("shift+f4")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen))
        screen = app.screen
        await wait_until(pilot, lambda: screen.status.state == "done")
        await pilot.pause()
        columns = screen.columns
        assert len(columns) == 2
        assert columns[0].params.seed == columns[1].params.seed == 7
        assert "1: without, 2: with ablated L2 H2" in str(
            screen.query_one("#compare-prompt").render()
        )
        outputs = [[e.token_id for e in c.output.events] for c in columns]

        model, tokenizer = app.core.backend.model, app.core.backend.tokenizer
        ids = tokenizer.encode(PROMPT)
        hooked = HookedModel(model, ablation_hooks(model, [ablation]))
        expected = []
        for m in (model, hooked):  # each column: a batch of one with the column's settings
            events = generate_batch(m, tokenizer, ids, [columns[0].params], n_top=app.core.n_top)
            expected.append([e.token_id for _, e in events])
        assert outputs == expected and outputs[0] != outputs[1]
        first = next(i for i, (a, b) in enumerate(zip(*outputs, strict=False)) if a != b)
        assert [c.output.selected for c in columns] == [first, first]
        assert any(f"differ from token {first + 1}" in n for n in notes(app))


async def test_look_inside_a_compare_column_reads_its_own_interventions(
    tiny_model_dir, deterministic_settings
) -> None:
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        app.core.toggle_ablation(Ablation(1, "head", 1))
        app.prompt_editor.load_text(PROMPT)
        await pilot.press("shift+f4")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen))
        compare = app.screen
        await wait_until(pilot, lambda: compare.status.state == "done")
        for number, ablated in ((1, False), (2, True)):
            compare.columns[number - 1].output.focus()
            compare.columns[number - 1].output.select(2)
            await pilot.pause()
            screen = await look_inside(pilot)
            assert (screen.report.attribution.heads[1, 1] == 0.0) == ablated
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is compare)
