"""The sampler view's data: a selected token's step recomputed over the kv cache, the view
under any settings (the engine's `sampler_view` on the same logits), draws, resampling, and
expanding the step into batched branches. Tiny random GPT-2."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gpt_tui.backends.local import LocalBackend
from gpt_tui.engine import SamplingParams
from gpt_tui.engine.sampling import Sampler, draws, sampler_view
from gpt_tui.models.loading import LoadedModel
from gpt_tui.playground.core import Playground
from gpt_tui.playground.sampler_lab import (
    StepLab,
    add_branches,
    expand,
    main_view_step,
    step_logits,
)
from gpt_tui.settings import UserSettings

SEEDED = SamplingParams(temperature=0.9, top_k=40, seed=7, max_tokens=8)


@pytest.fixture
def playground(tiny_gpt2, gpt2_tokenizer) -> Playground:
    core = Playground(UserSettings(sampling=SEEDED, speculative="off"))
    backend = LocalBackend(LoadedModel("tiny", tiny_gpt2, gpt2_tokenizer, None, {}))
    assert core.set_backend(core.begin_load(), "tiny", backend)
    list(core.stream(core.generate("Hello world, this is a test of")))
    return core


def step_of(core: Playground, index: int):
    backend = core.backend
    return main_view_step(core.transcript, index, None, backend.model, backend.tokenizer,
                          core.encode_chat, backend.cache)  # fmt: skip


def test_the_step_over_the_cache_is_the_steps_own_distribution(playground):
    request = step_of(playground, 4)
    event = playground.transcript.reply.events[4]
    logits, over_cache = step_logits(request, playground.engine_lock)
    assert over_cache
    no_cache = dataclasses.replace(request, lens=dataclasses.replace(request.lens, cache=None))
    fresh, over = step_logits(no_cache, playground.engine_lock)
    assert not over
    np.testing.assert_allclose(logits, fresh, atol=1e-4)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    assert probs[event.token_id] == pytest.approx(event.prob, rel=1e-3)
    assert request.n_prompt == len(playground.transcript.reply_prefix)
    assert request.draw_position == event.position


def test_the_view_is_sampler_view_on_the_same_logits_and_the_sampled_token_is_listed(playground):
    request = step_of(playground, 3)
    lab = StepLab.open(request, playground.engine_lock)
    for params in (SEEDED, SEEDED.replace(temperature=0.3, top_p=0.5), SamplingParams()):
        view = lab.view(params)
        ref = sampler_view(lab.logits, params, request.context, 10,
                           n_prompt=request.n_prompt, seed=params.seed,
                           position=request.draw_position)  # fmt: skip
        assert view.order == ref.order
        for mine, theirs in zip(view.stages, ref.stages, strict=True):
            np.testing.assert_array_equal(mine.probs, theirs.probs)
            assert (mine.name, mine.kept) == (theirs.name, theirs.kept)
        assert request.token in lab.rows(view)


def test_the_final_column_is_what_generation_drew_from(playground):
    request = step_of(playground, 2)
    event = playground.transcript.reply.events[2]
    lab = StepLab.open(request, playground.engine_lock)
    view = lab.view(SEEDED)
    assert view.final.probs[event.token_id] == pytest.approx(event.sampled_prob, rel=1e-3)
    # resampling under the same settings and seed draws the token generation drew
    token, p = lab.resample(view, SEEDED.seed)
    assert token == event.token_id and p == pytest.approx(event.sampled_prob, rel=1e-3)
    sampler = Sampler(lab.n_vocab, list(request.context[: request.n_prompt]), SEEDED.seed)
    for t in request.context[request.n_prompt :]:
        sampler.observe(int(t))
    drawn, _ = sampler.sample(lab.logits, SEEDED, request.draw_position)
    assert drawn == token


def test_draws_count_n_draws_from_the_final_distribution(playground):
    lab = StepLab.open(step_of(playground, 1), playground.engine_lock)
    view = lab.view(SEEDED)
    drawn = lab.draws(view, 1000, 5)
    assert drawn.counts.sum() == 1000 and drawn.seed == 5
    np.testing.assert_array_equal(drawn.counts, draws(view.final.probs, 1000, 5))
    assert np.all(drawn.counts[view.final.probs == 0] == 0)


def test_expand_continues_the_likeliest_alternatives_as_branches(playground):
    core = playground
    request = step_of(core, 3)
    lab = StepLab.open(request, core.engine_lock)
    view = lab.view(SEEDED)
    tokens = lab.alternatives(view, 3)
    assert len(tokens) == 3 and request.token not in tokens
    shown = [e.token_id for e in core.transcript.reply.events]
    branches = expand(request, tokens, SEEDED, core.engine_lock, n_tokens=5)
    assert [b[0].token_id for b in branches] == tokens
    for branch in branches:
        assert 1 < len(branch) <= 6
        assert [e.index for e in branch] == list(range(3, 3 + len(branch)))
        assert branch[0].sampled_prob == pytest.approx(view.final.probs[branch[0].token_id])
    firsts = add_branches(core.transcript, 3, branches)
    tree = core.transcript.reply.tree
    assert len(tree.siblings(firsts[0])) == 4  # the token taken and the three alternatives
    assert [e.token_id for e in core.transcript.reply.events] == shown  # still the branch shown
    assert tree.token_ids(tree.leaf(firsts[1]))[3:] == [e.token_id for e in branches[1]]


def test_expand_cuts_a_branch_where_a_banned_string_begins(playground):
    core = playground
    request = step_of(core, 3)
    lab = StepLab.open(request, core.engine_lock)
    tokens = lab.alternatives(lab.view(SEEDED), 2)
    free = expand(request, tokens, SEEDED, core.engine_lock, n_tokens=6)
    banned = free[0][2].text + free[0][3].text
    assert banned.strip()
    branches = expand(request, tokens, SEEDED.replace(banned_strings=(banned,)),
                      core.engine_lock, n_tokens=6)  # fmt: skip
    cut = branches[0]
    assert banned not in "".join(e.text for e in cut) and cut[-1].finish_reason == "banned"
    assert [e.token_id for e in cut] == [e.token_id for e in free[0][: len(cut)]]
    assert len(cut) < len(free[0])
