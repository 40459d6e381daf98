"""The samplers transformers has, against its logits processors (tests/fixtures/
make_sampler_reference.py wrote the fixture): one by one and chained in the default order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gpt_tui.engine.sampling import Sampler, SamplingParams, history_for, run_chain

FIXTURE = Path(__file__).parents[2] / "fixtures" / "sampler_reference.npz"
DATA = np.load(FIXTURE)
CASES = json.loads(str(DATA["cases"]))


@pytest.mark.parametrize("case", range(len(CASES)), ids=[json.dumps(c) for c in CASES])
def test_the_chain_equals_transformers_processors(case: int) -> None:
    params = SamplingParams(**CASES[case])
    logits, context = DATA["logits"], DATA["context"]
    for row, expected in zip(logits, DATA["outputs"][case], strict=True):
        got = run_chain(row, params, history_for(context, row.size))
        removed = np.isneginf(expected)
        np.testing.assert_array_equal(np.isneginf(got), removed)  # the same tokens kept
        np.testing.assert_allclose(got[~removed], expected[~removed], rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("case", range(len(CASES)), ids=[json.dumps(c) for c in CASES])
def test_the_sampler_draws_from_transformers_distribution(case: int) -> None:
    params = SamplingParams(**CASES[case])
    logits, context = DATA["logits"], DATA["context"]
    for row, expected in zip(logits, DATA["outputs"][case], strict=True):
        # transformers counts every context token for the repetition penalty: so does a
        # sampler whose prompt is the context
        sampler = Sampler(row.size, context.tolist(), seed=0)
        e = np.exp(expected.astype(np.float64) - expected.max())
        np.testing.assert_allclose(sampler.distribution(row, params), e / e.sum(), atol=1e-6)
