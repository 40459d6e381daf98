"""`gpt-tui sampler` (cli/sampler.py, playground/sampler_report.py): the JSON contract against
the engine's own numbers, the table, the draws, and that `final` is what generation draws from."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gpt_tui.cli import main
from gpt_tui.engine import generate
from gpt_tui.engine.sampling import SamplingParams, draws, sampler_view
from gpt_tui.engine.sampling.draws import draw_index, position_uniform
from gpt_tui.engine.sampling.dry import breaker_mask
from gpt_tui.models.loading import load_model
from gpt_tui.playground.sampler_report import sampler_report

TEXT = "The capital of France is the capital of"


@pytest.fixture(autouse=True)
def _no_plan(monkeypatch) -> None:
    monkeypatch.setenv("GPT_TUI_PLAN", "default")  # no plan measured: only what is tested


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    """The tiny model as the CLI loads it (the same weights, the same layout)."""
    return load_model(tiny_model_dir)


def sampler_json(capsys, *args: str) -> dict:
    assert main(["sampler", *args, "--json"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 1
    return json.loads(out)


def test_json_contract_against_the_engine(tiny, tiny_model_dir, capsys) -> None:
    flags = ["--temperature", "0.8", "--top-k", "40", "--top-p", "0.9", "--repetition-penalty",
             "1.3", "--typical-p", "0.95"]  # fmt: skip
    report = sampler_json(capsys, TEXT, "-m", str(tiny_model_dir), "--top", "6", *flags)
    ids = tiny.tokenizer.encode(TEXT)
    assert report["tokens"] == [{"id": i, "text": tiny.tokenizer.token_text(i)} for i in ids]
    assert report["position"] == len(ids) - 1
    assert report["order"] == ["penalties", "temperature", "top_k", "top_p", "typical_p"]
    assert [s["name"] for s in report["stages"]] == ["model", *report["order"]]

    params = SamplingParams(temperature=0.8, top_k=40, top_p=0.9, repetition_penalty=1.3,
                            typical_p=0.95)  # fmt: skip
    logits = tiny.model.forward(ids)[-1]  # the last row of a full forward pass
    view = sampler_view(logits, params, ids, 6)
    followed = [int(i) for i in view.top_ids]
    for got, want in zip(report["stages"], view.stages, strict=True):
        assert [t["id"] for t in got["top"]] == followed  # the same ids in every stage
        assert got["kept"] == want.kept
        assert got["entropy"] == pytest.approx(want.entropy, abs=1e-5)
        for t in got["top"]:
            assert t["p"] == pytest.approx(want.probs[t["id"]], abs=1e-6)
            if want.probs[t["id"]] == 0:
                assert t["p"] == 0 and t["logit"] is None
            else:
                assert t["logit"] == pytest.approx(want.logits[t["id"]], abs=1e-4)
    model_stage = report["stages"][0]
    assert model_stage["top"][0]["logit"] == pytest.approx(float(logits.max()), abs=1e-4)
    final = report["final"]
    assert final["kept"] == view.final.kept and final["kept"] < tiny.model.n_vocab
    ps = [t["p"] for t in final["top"]]
    assert ps == sorted(ps, reverse=True) and all(p > 0 for p in ps) and len(ps) <= 6
    assert "draws" not in report


def test_position_is_the_context_the_penalties_see(tiny, tiny_model_dir, capsys) -> None:
    args = [TEXT, "-m", str(tiny_model_dir), "--position", "2", "--presence-penalty", "1.5"]
    report = sampler_json(capsys, *args, "--top", "5")
    ids = tiny.tokenizer.encode(TEXT)[:3]
    assert report["position"] == 2 and len(report["tokens"]) == len(tiny.tokenizer.encode(TEXT))
    logits = tiny.model.forward(ids)[-1]
    # every token of the context counts as generated: each loses 1.5 once
    expected = logits.astype(np.float64)
    expected[np.unique(ids)] -= 1.5
    penalised = report["stages"][1]
    assert penalised["name"] == "penalties"
    for t in penalised["top"]:
        assert t["logit"] == pytest.approx(expected[t["id"]], abs=1e-4)


def test_draws_count_the_final_distribution_with_the_seed(tiny, tiny_model_dir, capsys) -> None:
    args = [TEXT, "-m", str(tiny_model_dir), "--temperature", "1.4", "--min-p", "0.02"]
    report = sampler_json(capsys, *args, "--draws", "500", "--seed", "11")
    ids = tiny.tokenizer.encode(TEXT)
    view = sampler_view(tiny.model.forward(ids)[-1], SamplingParams(temperature=1.4, min_p=0.02),
                        ids)  # fmt: skip
    counts = draws(view.final.probs, 500, 11)
    assert report["draws"]["n"] == 500 and report["draws"]["seed"] == 11
    got = {c["id"]: c["count"] for c in report["draws"]["counts"]}
    assert got == {int(i): int(counts[i]) for i in np.flatnonzero(counts)}
    assert sum(got.values()) == 500
    values = [c["count"] for c in report["draws"]["counts"]]
    assert values == sorted(values, reverse=True)


SETTINGS = [
    SamplingParams(temperature=1.3, top_k=60, top_p=0.95),  # the fast path's settings
    SamplingParams(temperature=1.2, typical_p=0.9, min_p=0.01, repetition_penalty=1.2),
    SamplingParams(
        top_n_sigma=2.0,
        xtc_probability=0.5,
        xtc_threshold=0.02,
        sampler_order=("top_n_sigma", "xtc", "temperature"),
    ),  # fmt: skip
    SamplingParams(temperature=0.9, dry_multiplier=0.8, dry_allowed_length=1, dynatemp_range=0.5),
]


@pytest.mark.parametrize("params", SETTINGS, ids=["classic", "typical", "xtc", "dry"])
def test_generate_draws_from_the_final_distribution_the_view_shows(tiny, params) -> None:
    """For 25 seeds, generate's first token is the draw, with that seed at that position, from
    the view's `final` (exact: the same uniform, the same weights)."""
    model, tok = tiny.model, tiny.tokenizer
    ids = tok.encode("one two three one two three one two")
    logits = model.forward(ids, last_only=True)[-1]
    breakers = breaker_mask(tok.token_bytes, tok.n_vocab, model.n_vocab,
                            params.dry_sequence_breakers)  # fmt: skip
    for seed in range(25):
        run = params.replace(seed=seed, max_tokens=1)
        (event,) = generate(model, tok, ids, run, n_top=1)
        # the token after the last one is drawn at position len(ids) with this seed
        view = sampler_view(logits, run, ids, seed=seed, position=len(ids),
                            dry_breakers=breakers)  # fmt: skip
        kept = np.flatnonzero(view.final.probs > 0)
        drawn = kept[draw_index(view.final.probs[kept], position_uniform(seed, len(ids)))]
        assert event.token_id == drawn, seed
        assert event.sampled_prob == pytest.approx(view.final.probs[drawn], rel=1e-9)


def test_the_report_equals_the_view_of_its_position(tiny) -> None:
    ids = tiny.tokenizer.encode(TEXT)
    params = SamplingParams(temperature=0.7, xtc_probability=0.9, xtc_threshold=0.01, seed=4)
    report = sampler_report(tiny.model, tiny.tokenizer, ids, params, 3, k=4, seed=4)
    logits = tiny.model.forward(ids[:4])[-1]
    view = sampler_view(logits, params, ids[:4], 4, seed=4, position=4)
    np.testing.assert_allclose(report.view.final.probs, view.final.probs, atol=1e-6)
    assert report.view.order == view.order


def test_the_table_shows_stages_draws_kept_and_entropy(tiny_model_dir, capsys) -> None:
    args = [TEXT, "-m", str(tiny_model_dir), "--top-k", "5", "--temperature", "0.5"]
    assert main(["sampler", *args, "--draws", "100", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    for label in ("model", "temperature", "top_k", "draws", "possible tokens", "entropy (bits)",
                  "stages applied: temperature → top_k", "seed 1"):  # fmt: skip
        assert label in out, label


def test_temperature_last_and_sampler_order(tiny_model_dir, capsys) -> None:
    args = [TEXT, "-m", str(tiny_model_dir), "--temperature", "0.5", "--top-k", "3"]
    report = sampler_json(capsys, *args, "--temperature-last")
    assert report["order"] == ["top_k", "temperature"]
    report = sampler_json(capsys, *args, "--sampler-order", "top_k")
    assert report["order"] == ["top_k"]  # a stage left out does not run


def test_logit_bias_and_bans_by_id_and_by_text(tiny, tiny_model_dir, capsys) -> None:
    paris = tiny.tokenizer.encode(" Paris")[0]
    args = [TEXT, "-m", str(tiny_model_dir), "--logit-bias", " Paris=100", "--ban", "13"]
    report = sampler_json(capsys, *args)
    assert report["order"] == ["logit_bias", "banned_tokens"]
    assert report["final"]["top"][0]["id"] == paris
    assert report["settings"]["logit_bias"] == [[paris, 100.0]]
    assert report["settings"]["banned_tokens"] == [13]


def test_presets_save_list_load_and_delete(tiny_model_dir, capsys) -> None:
    args = [TEXT, "-m", str(tiny_model_dir), "--top-k", "7", "--temperature", "0.6"]
    report = sampler_json(capsys, *args, "--save-preset", "mine", "--seed", "3")
    assert main(["presets", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)["presets"]}
    assert listed["mine"]["settings"] == {"temperature": 0.6, "top_k": 7}  # not the seed
    assert listed["greedy"]["settings"] == {"temperature": 0.0}
    again = sampler_json(capsys, TEXT, "-m", str(tiny_model_dir), "--preset", "mine")
    assert again["final"] == report["final"]
    changed = sampler_json(capsys, TEXT, "-m", str(tiny_model_dir), "--preset", "mine",
                           "--top-k", "2")  # fmt: skip
    assert changed["final"]["kept"] == 2  # a flag changes the preset
    greedy = sampler_json(capsys, TEXT, "-m", str(tiny_model_dir), "--preset", "greedy")
    assert greedy["final"]["kept"] == 1
    assert main(["presets", "--delete", "mine"]) == 0
    capsys.readouterr()
    assert main(["sampler", TEXT, "-m", str(tiny_model_dir), "--preset", "mine"]) == 2
    assert "no preset 'mine'; known: greedy, default, model" in capsys.readouterr().err


def test_generate_counts_rewinds_in_its_status_line(tiny, tiny_model_dir, capsys) -> None:
    greedy = ["-m", str(tiny_model_dir), "--temperature", "0", "--max-tokens", "6"]
    assert main(["generate", "Hello", *greedy]) == 0
    first = capsys.readouterr().out.strip()[:3]
    assert first
    assert main(["generate", "Hello", *greedy, "--ban-string", first]) == 0
    out, err = capsys.readouterr()
    assert first not in out
    assert "rewind" in err and "for banned strings" in err


NEW_NUMBERS = {
    "typical_p": 0.9,
    "top_n_sigma": 1.5,
    "xtc_probability": 0.4,
    "xtc_threshold": 0.2,
    "dry_multiplier": 0.8,
    "dry_base": 2.0,
    "dry_allowed_length": 3,
    "dynatemp_range": 0.5,
    "dynatemp_exponent": 2.0,
    "mirostat_tau": 4.0,
    "mirostat_eta": 0.2,
}


def test_every_new_numeric_flag_shows_and_reaches_the_sampler(tiny_model_dir, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    shown = capsys.readouterr().out
    flags: list[str] = []
    for name, value in NEW_NUMBERS.items():
        flag = "--" + name.replace("_", "-")
        assert flag in shown, flag
        flags += [flag, str(value)]
    report = sampler_json(capsys, TEXT, "-m", str(tiny_model_dir), *flags, "--seed", "2")
    assert report["settings"] == NEW_NUMBERS
    assert report["order"] == ["dry", "temperature", "typical_p", "top_n_sigma", "xtc",
                               "mirostat"]  # fmt: skip
