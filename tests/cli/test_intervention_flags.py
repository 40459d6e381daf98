"""--ablate and --steer-* in generate, score, lens and sampler: the logits they give are the ones
engine/interventions.py's hooks give, and bad input is one line with exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gpt_tui.cli import main
from gpt_tui.engine.interventions import (
    Ablation,
    ablation_hooks,
    merged,
    steering_hooks,
    steering_vector,
)
from gpt_tui.engine.layers import softmax

TEXT = "The capital of France is"


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GPT_TUI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GPT_TUI_PLAN", "default")  # the plan's measuring is tested elsewhere


def run_json(capsys, *argv: str) -> list[dict]:
    assert main(list(argv)) == 0, capsys.readouterr().err
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def steering(model, tokenizer, add: str, sub: str, layer: int, coef: float) -> dict:
    vector = steering_vector(model, tokenizer.encode(add), tokenizer.encode(sub), layer)
    return steering_hooks(layer, vector, coef)


def test_score_with_ablations_has_the_hooked_models_probabilities(
    tiny_model_dir, tiny_gpt2, gpt2_tokenizer, capsys
) -> None:
    ids = gpt2_tokenizer.encode(TEXT)
    ablations = [Ablation(1, "head", 0), Ablation(0, "mlp", mean=True)]
    hooks = ablation_hooks(tiny_gpt2, ablations, ids)
    probs = softmax(tiny_gpt2.forward(ids, hooks=hooks).astype(np.float64))  # [n_tok, n_vocab]
    plain = softmax(tiny_gpt2.forward(ids).astype(np.float64))  # [n_tok, n_vocab]
    rows = run_json(capsys, "score", TEXT, "-m", str(tiny_model_dir), "--json",
                    "--ablate", "1.0", "--ablate", "0.mlp:mean")  # fmt: skip
    scored = [r for r in rows[:-1] if r["scored"]]
    assert len(scored) == len(ids) - 1
    for r in scored:
        p = r["position"]
        assert r["prob"] == pytest.approx(probs[p - 1, ids[p]], rel=1e-4)
    changed = [r["prob"] / plain[r["position"] - 1, ids[r["position"]]] for r in scored]
    assert max(abs(np.log(changed))) > 1e-3  # the ablations do change something


def test_lens_with_steering_reads_the_steered_model(
    tiny_model_dir, tiny_gpt2, gpt2_tokenizer, capsys
) -> None:
    ids = gpt2_tokenizer.encode(TEXT)
    hooks = steering(tiny_gpt2, gpt2_tokenizer, " love", " hate", 1, 8.0)
    logits = tiny_gpt2.forward(ids, hooks=hooks)[-1]  # [n_vocab]
    assert int(np.argmax(logits)) != int(np.argmax(tiny_gpt2.forward(ids)[-1]))  # it steers
    (report,) = run_json(capsys, "lens", TEXT, "-m", str(tiny_model_dir), "--json",
                         "--steer-add", " love", "--steer-sub", " hate", "--steer-layer", "1",
                         "--steer-coef", "8")  # fmt: skip
    assert report["target"]["id"] == int(np.argmax(logits))
    p = softmax(logits.astype(np.float64))[report["target"]["id"]]
    assert report["layers"][-1]["p_target"] == pytest.approx(p, rel=1e-4)


def test_sampler_with_both(tiny_model_dir, tiny_gpt2, gpt2_tokenizer, capsys) -> None:
    ids = gpt2_tokenizer.encode(TEXT)
    hooks = merged(
        ablation_hooks(tiny_gpt2, [Ablation(0, "attn", mean=True)], ids),
        steering(tiny_gpt2, gpt2_tokenizer, "Yes", "No", 0, 2.0),
    )
    probs = softmax(tiny_gpt2.forward(ids, hooks=hooks)[-1].astype(np.float64))  # [n_vocab]
    (report,) = run_json(capsys, "sampler", TEXT, "-m", str(tiny_model_dir), "--json",
                         "--ablate", "0.attn:mean", "--steer-add", "Yes", "--steer-sub", "No",
                         "--steer-layer", "0", "--steer-coef", "2")  # fmt: skip
    model = report["stages"][0]
    top = [e["id"] for e in model["top"]]
    assert top == list(np.argsort(-probs, kind="stable")[: len(top)])
    for e in model["top"]:
        assert e["p"] == pytest.approx(probs[e["id"]], rel=1e-4)


def test_generate_greedy_under_an_ablation_follows_the_hooked_model(
    tiny_model_dir, tiny_gpt2, gpt2_tokenizer, capsys
) -> None:
    ids = gpt2_tokenizer.encode(TEXT)
    hooks = ablation_hooks(tiny_gpt2, [Ablation(1, "head", 1)])
    expected = []
    for _ in range(8):  # full passes, no cache: what the cached run must agree with
        token = int(np.argmax(tiny_gpt2.forward([*ids, *expected], hooks=hooks)[-1]))
        expected.append(token)
    rows = run_json(capsys, "generate", TEXT, "-m", str(tiny_model_dir), "--json",
                    "--temperature", "0", "--max-tokens", "8", "--speculative", "off",
                    "--ablate", "1.1")  # fmt: skip
    assert [r["token_id"] for r in rows] == expected
    rows = run_json(capsys, "generate", TEXT, "-m", str(tiny_model_dir), "--json",
                    "--temperature", "0", "--max-tokens", "8", "--speculative", "lookup",
                    "--ablate", "1.1")  # fmt: skip
    assert [r["token_id"] for r in rows] == expected  # speculation checks under the hooks too


@pytest.mark.parametrize(
    ("command", "flags", "message"),
    [
        ("generate", ["--ablate", "5.0"], "no block 5; the blocks are 0-1"),
        ("score", ["--ablate", "1.2"], "no head 2; the heads are 0-1"),
        ("lens", ["--ablate", "0.mlp:mean", "--ablate", "3.attn"], "no block 3"),
        ("sampler", ["--ablate", "x.y"], "is not L.H, L.attn or L.mlp"),
        ("generate", ["--steer-add", "a", "--steer-layer", "0"], "steering needs --steer-sub"),
        ("score", ["--steer-add", "a", "--steer-sub", "b", "--steer-layer", "2"], "no block 2"),
        ("lens", ["--steer-coef", "inf"], "steer-coef must be a finite number"),
        ("sampler", ["--steer-add", "", "--steer-sub", "b"], "must be non-empty"),
    ],
)
def test_bad_interventions_are_one_line_and_exit_2(
    tiny_model_dir, command, flags, message, capsys
) -> None:
    try:
        code = main([command, "Hello there", "-m", str(tiny_model_dir), *flags])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("command", ["generate", "score", "lens", "sampler"])
def test_a_server_cannot_intervene(command, capsys) -> None:
    url = "http://127.0.0.1:9/v1"  # never connected to: said first
    assert main([command, "Hello", "-m", url, "--ablate", "0.0"]) == 2
    err = capsys.readouterr().err
    assert "interventions (--ablate, --steer-*) need the local engine" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flags", [["--ablate", "1.attn"], ["--ablate", "0.attn:mean"],
                                   ["--steer-add", "a b c", "--steer-sub", "x y z",
                                    "--steer-layer", "1", "--steer-coef", "4"]])  # fmt: skip
def test_lens_attribution_adds_up_under_interventions(tiny_model_dir, capsys, flags) -> None:
    """An ablated block attention (L.attn) is one part, as replaced; a steering vector is a
    part of its own (`steering`): the parts add up to the logit."""
    assert main(["lens", TEXT, "-m", str(tiny_model_dir), "--json", *flags]) == 0
    captured = capsys.readouterr()
    assert "[interventions: " in captured.err
    a = json.loads(captured.out)["attribution"]
    total = a["embeddings"] + np.sum(a["heads"]) + np.sum(a["mlps"]) + a["bias"]
    total += a.get("steering", 0.0)
    assert total == pytest.approx(a["logit"], abs=1e-3)
    assert ("steering" in a) == ("--steer-add" in flags)


def test_a_steering_text_longer_than_the_context(tiny_model_dir, capsys) -> None:
    long = "word " * 100  # the tiny model's context is 64 tokens
    argv = ["score", TEXT, "-m", str(tiny_model_dir), "--steer-add", long, "--steer-sub", "b",
            "--steer-layer", "0"]  # fmt: skip
    assert main(argv) == 2
    assert "longer than the context of 64 tokens" in capsys.readouterr().err
