"""Branching: another token anywhere in the reply, the tree of branches, moving about it."""

from __future__ import annotations

import numpy as np
from textual.pilot import Pilot
from textual.widgets import OptionList
from tui_helpers import generate_from, wait_generated, wait_loaded, wait_until

from gpt_tui.engine import TokenEvent
from gpt_tui.playground.branches import ROOT
from gpt_tui.playground.transcript import Transcript
from gpt_tui.tui.app import GptTuiApp
from gpt_tui.tui.widgets.branch_view import BranchView

SIZE = (120, 40)
PROMPT = "The sky is"


def notes(app: GptTuiApp) -> list[str]:
    return [n.message for n in app._notifications]


def branch_rows(app: GptTuiApp) -> list[str]:
    branches = app.query_one("#branches", OptionList)
    return [str(branches.get_option_at_index(i).prompt) for i in range(branches.option_count)]


async def generate(pilot: Pilot, prompt: str = PROMPT) -> None:
    await generate_from(pilot, prompt)


async def branch_with_keys(pilot: Pilot, index: int, rank: int) -> None:
    """Select output token `index`, then alternative `rank` in the inspector, then enter."""
    app: GptTuiApp = pilot.app  # type: ignore[assignment]
    app.output.focus()
    app.output.select(index)
    await pilot.pause()
    await pilot.press(str(rank))
    assert app.focused is app.query_one("#alternatives")
    await pilot.press("enter")
    await wait_generated(pilot)


# --- the transcript's tree (no app) ------------------------------------------------------------


def event(token_id: int, text: str) -> TokenEvent:
    return TokenEvent(0, token_id, text, 0.5, -0.69, 0.5, 1, 1.0, (), 0)


def test_regenerate_adds_a_sibling_continue_extends_branch_rolls_back() -> None:
    t = Transcript()
    t.start_completion("ab", [1, 2], tokenizer=None)
    t.add_events([event(3, "c"), event(4, "d")])
    t.continue_context(None, list, list)
    t.add_events([event(5, "e")])
    tree = t.reply.tree
    assert len(tree.leaves()) == 1 and tree.token_ids() == [3, 4, 5]

    assert t.regenerate_context(None, list, list) == [1, 2]
    t.add_events([event(6, "f")])
    assert len(tree.nodes[ROOT].children) == 2 and t.reply.content == "f"

    t.show_branch(tree.nodes[ROOT].children[0])
    assert t.reply.content == "cde" and t.reply.finish == "user"
    # Branch at token 1: the context is the prefix, the reply before it, the new token.
    assert t.branch_context(1, event(9, "X")) == [1, 2, 3, 9]
    assert t.reply.content == "cX"
    assert len(tree.leaves()) == 3
    # The same token there again: its branch is shown as it was, nothing to generate.
    t.show_branch(tree.nodes[ROOT].children[1])
    t.show_branch(tree.nodes[ROOT].children[0])
    assert t.reply.content == "cX"  # the way last taken below the first token
    assert t.branch_context(1, event(4, "d")) is None and t.reply.content == "cde"


# --- in the app ----------------------------------------------------------------------------------


async def test_picking_an_alternative_rewrites_the_reply_and_keeps_both(
    tiny_model_dir, deterministic_settings
):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await generate(pilot)
        before = app.output.text
        old = list(app.output.events)
        assert not app.branch_view.display  # no fork yet
        await branch_with_keys(pilot, 3, rank=2)

        new = app.output.events
        assert [e.token_id for e in new[:3]] == [e.token_id for e in old[:3]]
        assert new[3].token_id == old[3].top[1].token_id != old[3].token_id
        assert len(new) > 4 and app.output.text != before
        assert app.output.selected == 3 and app.focused is app.output
        tree = app.core.transcript.reply.tree
        assert len(tree.leaves()) == 2 and tree.branch_points() == [(3, 1, 2)]
        assert app.branch_view.display
        rows = branch_rows(app)
        assert len(rows) == 2 and "1/2" in rows[0] and "2/2" in rows[1] and "▶" in rows[1]

        # Siblings: [ goes back to the first text, ] to the branch again; the tree stays.
        branched = app.output.text
        await pilot.press("left_square_bracket")
        await pilot.pause()
        assert app.output.text == before and app.output.selected == 3
        assert "▶" in branch_rows(app)[0]
        await pilot.press("right_square_bracket")
        await pilot.pause()
        assert app.output.text == branched and len(tree.leaves()) == 2


async def test_a_click_on_an_alternative_branches(tiny_model_dir, deterministic_settings):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await generate(pilot)
        first = app.output.events[0]
        app.output.select(0)
        await pilot.pause()
        await pilot.click("#alternatives", offset=(3, 2))  # the third row: rank 3
        await wait_generated(pilot)
        assert app.output.events[0].token_id == first.top[2].token_id
        assert app.output.events[0].rank == 3 and np.isnan(app.output.events[0].sampled_prob)
        assert len(app.core.transcript.reply.tree.leaves()) == 2


async def test_the_branch_view_switches_branches(tiny_model_dir, deterministic_settings):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await generate(pilot)
        before = app.output.text
        await branch_with_keys(pilot, 5, rank=2)
        branched = app.output.text
        await branch_with_keys(pilot, 2, rank=3)
        tree = app.core.transcript.reply.tree
        assert len(tree.leaves()) == 3
        assert [(d, n) for d, _, n in tree.branch_points()] == [(2, 2)]
        # A click on the fork's first row: back down the way last taken, the branch at token 6.
        await pilot.click(BranchView, offset=(12, 1))
        await pilot.pause()
        assert app.output.text == branched and app.output.selected == 2
        assert [(d, i, n) for d, i, n in tree.branch_points()] == [(2, 0, 2), (5, 1, 2)]
        assert len(branch_rows(app)) == 4
        # The keyboard: the branch view's list, to the first sibling at token 6, enter.
        app.query_one("#branches").focus()
        app.query_one("#branches", OptionList).highlighted = 2
        await pilot.press("enter")
        await pilot.pause()
        assert app.output.text == before and app.output.selected == 5


async def test_keys_move_between_forks(tiny_model_dir, deterministic_settings):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await generate(pilot)
        await branch_with_keys(pilot, 6, rank=2)
        await branch_with_keys(pilot, 2, rank=2)
        await pilot.press("left_square_bracket")  # back to the first text at token 3...
        await pilot.pause()
        tree = app.core.transcript.reply.tree
        assert [d for d, _, _ in tree.branch_points()] == [2, 6]  # ...and on down to the other
        await pilot.press("end")
        await pilot.press("alt+up")
        assert app.output.selected == 6
        await pilot.press("left_curly_bracket")
        assert app.output.selected == 2
        await pilot.press("alt+up")
        assert app.output.selected == 2 and "No branch point above" in notes(app)[-1]
        await pilot.press("alt+down")
        assert app.output.selected == 6


async def test_regenerate_adds_a_branch_and_continue_lengthens_it(tiny_model_dir):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        app.core.sampling = app.core.sampling.replace(temperature=1.0, seed=1, max_tokens=6)
        await generate(pilot)
        first = app.output.text
        app.core.sampling = app.core.sampling.replace(seed=2)
        await pilot.press("ctrl+r")
        await wait_generated(pilot)
        tree = app.core.transcript.reply.tree
        assert len(tree.leaves()) == 2 and app.output.text != first
        assert app.branch_view.display
        await pilot.press("ctrl+n")
        await wait_generated(pilot)
        assert len(tree.leaves()) == 2 and len(app.output.events) == 12
        app.output.focus()
        await pilot.press("right_square_bracket")  # no selection: the last fork
        await pilot.pause()
        assert app.output.text == first


async def test_branching_equals_generating_with_that_token_forced(
    tiny_model_dir, deterministic_settings
):
    """The next token after the branch: its distribution equals a full forward pass (no cache)
    over the prompt, the reply up to the branch and the token taken there."""
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await generate(pilot)
        k = 4
        await branch_with_keys(pilot, k, rank=3)
        reply = app.core.transcript.reply
        context = app.core.transcript.reply_prefix + [e.token_id for e in reply.events[: k + 1]]
        # The cache was cut back and extended, not rebuilt: it starts with that context.
        assert app.core.backend.cache.tokens()[: len(context)] == context

        logits = app.core.backend.model.forward(context)[-1].astype(np.float64)  # [n_vocab]
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        after = reply.events[k + 1]
        for alternative in after.top:
            assert abs(alternative.prob - probs[alternative.token_id]) < 1e-5
        assert abs(after.prob - probs[after.token_id]) < 1e-5


async def test_only_the_reply_branches_and_another_models_reply_does_not(
    tiny_model_dir, deterministic_settings
):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await generate(pilot)
        app.output.focus()
        await pilot.press("1")  # nothing selected
        assert "Select a token of the reply first" in notes(app)[-1]
        app.core.transcript.tokenizer = object()  # as after switching to another vocabulary
        await branch_with_keys(pilot, 1, rank=2)
        assert "another model's vocabulary" in notes(app)[-1]
        assert len(app.core.transcript.reply.tree.leaves()) == 1


async def test_chat_mode_branches_the_latest_reply(tiny_model_dir, deterministic_settings):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await pilot.press("f3")
        await generate(pilot, "Hello")
        await generate(pilot, "Again")
        n_before = len(app.output.events) - len(app.core.transcript.reply.events)
        assert n_before > 0  # the first reply's tokens come first in the output
        await branch_with_keys(pilot, n_before + 1, rank=2)
        assert app.output.selected == n_before + 1
        assert len(app.core.transcript.reply.tree.leaves()) == 2
        assert app.core.transcript.messages()[1]["content"]  # the first reply is untouched
        app.output.select(0)
        await pilot.pause()
        await pilot.press("2")
        assert "Only the reply's tokens branch" in notes(app)[-1]
        app.inspector.show(app.output.events[0], 0)
        app.inspector.query_one(OptionList).highlighted = 1
        app.inspector.query_one(OptionList).action_select()  # as a click on it would
        await pilot.pause()
        assert "Only the reply's tokens branch" in notes(app)[-1]
        assert len(app.core.transcript.reply.tree.leaves()) == 2


def test_branch_view_snapshot(snap_compare, tiny_model_dir, deterministic_settings):
    async def run_before(pilot: Pilot) -> None:
        app: GptTuiApp = pilot.app  # type: ignore[assignment]
        await generate(pilot, "The meaning of life is")
        await branch_with_keys(pilot, 3, rank=2)
        await branch_with_keys(pilot, 3, rank=3)
        await branch_with_keys(pilot, 8, rank=2)
        app.status.stats = None  # timings differ between runs
        app.output.select(3)
        app.output.focus()
        app.clear_notifications()
        await wait_until(pilot, lambda: app.branch_view.display)
        await pilot.pause()

    app = GptTuiApp(model=tiny_model_dir)
    assert snap_compare(app, terminal_size=(120, 36), run_before=run_before)
