"""Interventions in the app: x on a head or an MLP in look inside's attribution tab ablates it,
the status line says so, generation runs under it and look inside reads the ablated model."""

from __future__ import annotations

import numpy as np
import pytest
from test_look_inside import SIZE, generate_and_select, look_inside, notes
from tui_helpers import generate_from, wait_until

from gpt_tui.engine.interventions import Ablation, ablation_hooks
from gpt_tui.tui.app import GptTuiApp
from gpt_tui.tui.widgets.attribution_table import AttributionTable
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
