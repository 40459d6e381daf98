"""The branch tree and session files: exact round trips, clear refusals of damaged files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from gpt_tui.engine import SamplingParams, generate
from gpt_tui.errors import SessionFileError
from gpt_tui.playground.branches import ROOT, BranchTree, forced_event
from gpt_tui.playground.session import (
    Session,
    from_json,
    load,
    save,
    to_json,
    to_markdown,
)


@pytest.fixture
def session(tiny_gpt2, gpt2_tokenizer) -> Session:
    """A tree with a first continuation and a branch on an alternative at step 3."""
    prompt = "The sky is"
    params = SamplingParams(temperature=0, max_tokens=8)
    scores: list = []
    tree = BranchTree()
    node = ROOT
    events = list(
        generate(tiny_gpt2, gpt2_tokenizer, prompt, params, on_prompt_scored=scores.extend)
    )
    for event in events:
        node = tree.add(node, event)
    step = events[3]
    choice = step.top[1]
    forced = forced_event(step, choice, gpt2_tokenizer.token_text(choice.token_id))
    branch = tree.add(tree.path(node)[2], forced)
    context = gpt2_tokenizer.encode(prompt) + [e.token_id for e in events[:3]] + [choice.token_id]
    for event in generate(tiny_gpt2, gpt2_tokenizer, context, params.replace(max_tokens=4)):
        branch = tree.add(branch, event)
    tree.select(branch)
    return Session(
        model="tiny",
        prompt=prompt,
        sampling=params,
        tree=tree,
        prompt_scores=scores,
        extra={"colour": "rank"},
    )


def test_tree_navigation(session) -> None:
    tree = session.tree
    assert len(tree.leaves()) == 2
    path = tree.path()
    assert len(path) == 3 + 1 + 4
    assert tree.branch_points() == [(3, 1, 2)]  # forked at depth 3; we are on the second branch
    first_leaf = [leaf for leaf in tree.leaves() if leaf not in path][0]
    sibling = tree.siblings(path[3])[0]
    assert tree.leaf(sibling) == first_leaf
    tree.select(first_leaf)
    assert tree.branch_points() == [(3, 0, 2)] and len(tree.events()) == 8
    assert tree.leaf(ROOT) == first_leaf  # "down" follows the branch last visited


def test_adding_the_same_token_again_reuses_the_node(session) -> None:
    tree = session.tree
    first = tree.path()[0]
    assert tree.add(ROOT, tree.nodes[first].event) == first


def test_forced_event_keeps_the_steps_distribution(session) -> None:
    forced = session.tree.events()[3]
    assert forced.rank == 2 and math.isnan(forced.sampled_prob)
    assert math.isclose(forced.logprob, math.log(forced.prob))


def test_json_round_trip_is_exact(session, tmp_path) -> None:
    path = save(session, tmp_path / "s.json")
    again = load(path)
    # serialised forms compare NaN (a forced token's sampling probability) as equal text
    assert json.dumps(to_json(again)) == json.dumps(to_json(session))
    assert again.tree.text() == session.tree.text()
    assert again.tree.current == session.tree.current
    assert [e.token_id for e in again.tree.events()] == session.tree.token_ids()
    np.testing.assert_array_equal(
        [s.logprob for s in again.prompt_scores], [s.logprob for s in session.prompt_scores]
    )
    assert again.sampling == session.sampling and again.extra == {"colour": "rank"}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(version=99), "newer gpt-tui"),
        (lambda d: d.update(format="other"), "not a gpt-tui session"),
        (lambda d: d["tree"]["nodes"][2].update(parent=50), "impossible parent"),
        (lambda d: d["tree"]["nodes"][1].update(event=None), "lacks its token"),
        (lambda d: d["tree"].update(current=10_000), "not in the tree"),
        (lambda d: d["tree"]["nodes"][1]["event"].update(token_id="x"), "token_id"),
        (lambda d: d.pop("prompt"), "missing 'prompt'"),
        (lambda d: d["sampling"].update(temperature=-1), "temperature must be in"),
    ],
)
def test_damaged_sessions_are_refused_clearly(session, mutate, message) -> None:
    data = json.loads(json.dumps(to_json(session)))
    mutate(data)
    with pytest.raises(SessionFileError, match=message):
        from_json(data, "s.json")


def test_unreadable_files(tmp_path) -> None:
    (tmp_path / "bad.json").write_text('{"format": "gpt-tui-session", ')
    with pytest.raises(SessionFileError, match="invalid JSON at line 1"):
        load(tmp_path / "bad.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SessionFileError, match="not UTF-8"):
        load(tmp_path / "bin.json")
    with pytest.raises(SessionFileError, match="no session file"):
        load(tmp_path / "none.json")


def test_markdown_export(session) -> None:
    text = to_markdown(session)
    assert text.startswith("# gpt-tui session")
    assert "## Current branch" in text and "## Other branches" in text
    assert session.prompt + session.tree.text() in text
    assert "temperature=0.0" in text
