"""engine/perplexity.py against transformers (tests/fixtures/eval_reference.json, written by
make_eval_reference.py) and against plain NumPy over full distributions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from gpt_tui.engine.perplexity import (
    Divergence,
    Totals,
    Window,
    divergence,
    plan_windows,
    token_nll,
    window_logits,
)
from gpt_tui.models.loading import load_model
from gpt_tui.tokenizer.chat import encode_prompt

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REFERENCE = json.loads((FIXTURES / "eval_reference.json").read_text())
CASES = REFERENCE["cases"]


@pytest.fixture(scope="module")
def hf_models() -> dict:
    return {name: load_model(FIXTURES / "hf" / name) for name in ("gpt2", "llama3")}


def case_id(case: dict) -> str:
    return f"{case['model']}{'+bos' if case['bos'] else ''}-ctx{case['ctx']}-stride{case['stride']}"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_windows_are_the_guides(case: dict):
    windows = plan_windows(len(case["ids"]), case["ctx"], case["stride"])
    assert [(w.begin, w.first, w.end) for w in windows] == [tuple(w) for w in case["windows"]]
    assert sum(w.n_scored for w in windows) == len(case["logprobs"])


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_log_likelihoods_and_perplexity_equal_transformers(case: dict, hf_models: dict):
    model = hf_models[case["model"]].model
    ids = np.array(case["ids"])
    nll = []
    for window in plan_windows(len(ids), case["ctx"], case["stride"]):
        for logits, targets in window_logits(model, ids, window, max_rows=7):
            nll.append(token_nll(logits, targets))
    ours = -np.concatenate(nll)
    theirs = np.array(case["logprobs"])
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)  # measured: at most 1.1e-6
    assert math.exp(-ours.mean()) == pytest.approx(math.exp(-theirs.mean()), rel=1e-6)


def test_the_texts_ids_are_transformers(hf_models: dict):
    """The fixtures' ids are what our tokenizers give (so the CLI scores the same tokens)."""
    for case in CASES:
        if not case["bos"]:
            tokenizer = hf_models[case["model"]].tokenizer
            assert encode_prompt(tokenizer, REFERENCE["text"]) == case["ids"]


def test_slices_and_context_give_the_rows_of_one_forward(tiny_gpt2):
    """A window's context kept as keys only, its scored rows in slices: the rows of one plain
    forward pass over the window."""
    ids = np.random.default_rng(0).integers(0, tiny_gpt2.n_vocab, 60)
    window = Window(begin=10, first=35, end=60)
    full = tiny_gpt2.forward(ids[10:60])  # [50, n_vocab]
    got = [(logits, targets) for logits, targets in window_logits(tiny_gpt2, ids, window, None, 4)]
    assert [len(t) for _, t in got] == [4] * 6 + [1]
    np.testing.assert_allclose(np.concatenate([g for g, _ in got]), full[24:49], atol=2e-5)
    assert np.concatenate([t for _, t in got]).tolist() == ids[35:60].tolist()


def test_token_nll_is_minus_log_softmax():
    rng = np.random.default_rng(1)
    logits = (rng.standard_normal((5, 1000)) * 8 + 40).astype(np.float32)
    targets = rng.integers(0, 1000, 5)
    z = logits.astype(np.float64)
    expected = -(z - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True))
                 - z.max(-1, keepdims=True))[np.arange(5), targets]  # fmt: skip
    np.testing.assert_allclose(token_nll(logits, targets), expected, rtol=1e-6)


def test_divergence_equals_numpy_over_full_distributions():
    rng = np.random.default_rng(2)
    logits = (rng.standard_normal((70, 300)) * 3).astype(np.float32)
    ref = (logits + rng.standard_normal((70, 300)).astype(np.float32)).astype(np.float32)
    targets = rng.integers(0, 300, 70)
    p = np.exp(logits.astype(np.float64))
    p /= p.sum(-1, keepdims=True)
    q = np.exp(ref.astype(np.float64))
    q /= q.sum(-1, keepdims=True)
    div = divergence(logits, ref, targets)
    np.testing.assert_allclose(div.kl, (q * np.log(q / p)).sum(-1), rtol=1e-9, atol=1e-12)
    assert div.same_top1.tolist() == (p.argmax(-1) == q.argmax(-1)).tolist()
    rows = np.arange(70)
    np.testing.assert_allclose(div.delta_p, p[rows, targets] - q[rows, targets], atol=1e-12)


def test_totals_report_the_definitions():
    totals = Totals()
    rng = np.random.default_rng(3)
    d = [rng.random(10) - 0.5 for _ in range(2)]
    totals.add(np.array([1.0, 2.0]), 5, Divergence(np.array([0.1, 0.3]), np.array([1, 0]), d[0]))
    totals.add(np.array([3.0]), 4, Divergence(np.array([0.2]), np.array([1]), d[1][:1]))
    assert totals.tokens == 3
    assert totals.mean_nll == pytest.approx(2.0)
    assert totals.perplexity == pytest.approx(math.exp(2.0))
    assert totals.bits_per_byte == pytest.approx(6.0 / math.log(2) / 9)
    against = totals.against()
    assert against["kl_mean"] == pytest.approx(0.2)
    assert against["same_top1"] == pytest.approx(2 / 3)
    delta = np.concatenate([d[0], d[1][:1]])
    assert against["delta_p"]["mean"] == pytest.approx(delta.mean())
    for q in (1, 5, 50, 95, 99):
        assert against["delta_p"][f"p{q}"] == pytest.approx(np.percentile(delta, q))


@pytest.mark.parametrize(
    ("n_ids", "ctx", "stride", "expected"),
    [
        (0, 8, 4, []),
        (1, 8, 4, []),
        (2, 8, 4, [(0, 1, 2)]),
        (8, 8, 4, [(0, 1, 8)]),
        (9, 8, 4, [(0, 1, 8), (4, 8, 9)]),
        (17, 8, 8, [(0, 1, 8), (8, 9, 16)]),  # 16 is the first of its window: unscored
    ],
)
def test_window_edges(n_ids: int, ctx: int, stride: int, expected: list):
    assert [(w.begin, w.first, w.end) for w in plan_windows(n_ids, ctx, stride)] == expected


@pytest.mark.parametrize(("ctx", "stride"), [(8, 9), (8, 0), (1, 1)])
def test_bad_windows_are_refused(ctx: int, stride: int):
    with pytest.raises(ValueError, match="stride|window"):
        plan_windows(100, ctx, stride)
