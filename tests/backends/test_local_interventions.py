"""Runs with interventions through the playground core and the local backend: the kept kv cache
is never read under another intervention set than the one it was computed under."""

from __future__ import annotations

import numpy as np
import pytest

from gpt_tui.backends.base import Request
from gpt_tui.backends.local import LocalBackend
from gpt_tui.engine import SamplingParams
from gpt_tui.engine.hooked import Interventions, Steering
from gpt_tui.engine.interventions import Ablation, ablation_hooks
from gpt_tui.models.loading import LoadedModel
from gpt_tui.playground.core import Playground, PlaygroundError
from gpt_tui.playground.events import TokensStreamed
from gpt_tui.settings import UserSettings

PROMPT = "Hello world, this is"
ABLATE = Interventions((Ablation(1, "head", 0), Ablation(0, "attn")))
MEAN = Interventions((Ablation(0, "mlp", mean=True),))


def playground(model, tokenizer) -> Playground:
    sampling = SamplingParams(temperature=0.0, max_tokens=10)
    core = Playground(UserSettings(sampling=sampling, speculative="off"))
    backend = LocalBackend(LoadedModel("tiny", model, tokenizer, None, {}))
    assert core.set_backend(core.begin_load(), "tiny", backend)
    return core


def tokens(core: Playground, run) -> list[int]:
    return [e.token_id for ev in core.stream(run) if isinstance(ev, TokensStreamed)
            for e in ev.events]  # fmt: skip


def fresh(model, tokenizer, interventions: Interventions) -> list[int]:
    core = playground(model, tokenizer)
    core.interventions = interventions
    return tokens(core, core.generate(PROMPT))


@pytest.fixture(params=["tiny_gpt2", "tiny_random_llama"])
def model(request):
    return request.getfixturevalue(request.param)


def test_a_cache_is_never_reused_under_another_intervention_set(model, gpt2_tokenizer) -> None:
    steer = Interventions(
        steering=Steering(1, 6.0, tuple(gpt2_tokenizer.encode(" yes")), (0,), " yes", "!")
    )
    plain, ablated = (
        fresh(model, gpt2_tokenizer, Interventions()),
        fresh(model, gpt2_tokenizer, ABLATE),
    )
    assert plain != ablated  # the test means something
    core = playground(model, gpt2_tokenizer)
    for interventions, expected in [
        (ABLATE, ablated),
        (Interventions(), plain),  # the cache computed under the ablations is not reused
        (ABLATE, ablated),
        (steer, fresh(model, gpt2_tokenizer, steer)),
        (MEAN, fresh(model, gpt2_tokenizer, MEAN)),
        (Interventions(), plain),
    ]:
        core.interventions = interventions
        assert tokens(core, core.generate(PROMPT)) == expected, interventions.describe()


def test_continue_under_interventions_matches_one_long_run(model, gpt2_tokenizer) -> None:
    core = playground(model, gpt2_tokenizer)
    core.interventions = ABLATE
    first = tokens(core, core.generate(PROMPT))
    more = tokens(core, core.continue_run())
    ids = gpt2_tokenizer.encode(PROMPT)
    hooks = ablation_hooks(model, ABLATE.ablations)
    expected: list[int] = []
    for _ in range(20):  # full passes, no cache
        expected.append(int(np.argmax(model.forward([*ids, *expected], hooks=hooks)[-1])))
    assert first + more == expected


def test_score_under_interventions(tiny_gpt2, gpt2_tokenizer) -> None:
    core = playground(tiny_gpt2, gpt2_tokenizer)
    plain = core.score(PROMPT)
    core.interventions = ABLATE
    ablated = core.score(PROMPT)
    ids = gpt2_tokenizer.encode(PROMPT)
    logits = tiny_gpt2.forward(ids, hooks=ablation_hooks(tiny_gpt2, ABLATE.ablations))
    for t in ablated.tokens:
        row = logits[t.position - 1].astype(np.float64)  # [n_vocab]
        log_p = row[t.token_id] - np.log(np.exp(row - row.max()).sum()) - row.max()
        assert t.logprob == pytest.approx(log_p, abs=1e-4)
    assert [t.logprob for t in plain.tokens] != [t.logprob for t in ablated.tokens]


def test_a_backend_that_cannot_intervene_refuses_the_run(tiny_gpt2, gpt2_tokenizer) -> None:
    core = playground(tiny_gpt2, gpt2_tokenizer)
    core.interventions = ABLATE
    core.backend.capabilities = core.backend.capabilities.__class__(
        unavailable={"interventions": "interventions need the local engine"}
    )
    with pytest.raises(PlaygroundError, match="interventions need the local engine"):
        core.generate(PROMPT)
    with pytest.raises(PlaygroundError, match="interventions need the local engine"):
        core.score(PROMPT)


def test_a_batch_runs_under_the_interventions_too(tiny_gpt2, gpt2_tokenizer) -> None:
    backend = LocalBackend(LoadedModel("tiny", tiny_gpt2, gpt2_tokenizer, None, {}))
    greedy = SamplingParams(temperature=0.0, max_tokens=10)
    ids = gpt2_tokenizer.encode(PROMPT)
    requests = [Request(ids, lambda: greedy, interventions=ABLATE) for _ in range(2)]
    streams: dict[int, list[int]] = {0: [], 1: []}
    for i, event in backend.generate_batch(requests):
        streams[i].append(event.token_id)
    expected = fresh(tiny_gpt2, gpt2_tokenizer, ABLATE)
    assert streams[0] == streams[1] == expected
