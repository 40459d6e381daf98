"""`gpt-tui lens` (playground/look_inside.py and cli/lens.py): the JSON contract, the tables, and
one-line errors with exit code 2 for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gpt_tui.cli import main

TEXT = "The capital of France is"


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GPT_TUI_HOME", str(tmp_path / "home"))
    # the kernel plan is measured, and its first-run line tested, in tests/engine and test_cli
    monkeypatch.setenv("GPT_TUI_PLAN", "default")


def lens_json(capsys, *args: str) -> dict:
    assert main(["lens", *args, "--json"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 1  # one object
    return json.loads(out)


def test_json_contract(tiny_model_dir, tiny_gpt2, gpt2_tokenizer, capsys) -> None:
    report = lens_json(capsys, TEXT, "-m", str(tiny_model_dir), "--top", "4")
    ids = gpt2_tokenizer.encode(TEXT)
    assert [t["id"] for t in report["tokens"]] == ids
    assert [t["text"] for t in report["tokens"]] == ["The", " capital", " of", " France", " is"]
    n = len(ids) - 1
    assert report["position"] == n  # the last token by default
    logits = tiny_gpt2.forward(ids)[n]  # [n_vocab]
    assert report["target"]["id"] == int(np.argmax(logits))  # the top-1 by default

    layers = report["layers"]
    assert [row["layer"] for row in layers] == list(range(tiny_gpt2.n_layer + 1))
    assert set(layers[0]) == {"layer", "p_target", "rank_target", "entropy", "kl", "top"}
    last = layers[-1]
    assert last["rank_target"] == 1 and last["kl"] == pytest.approx(0, abs=1e-9)
    assert len(last["top"]) == 4 and last["top"][0]["id"] == report["target"]["id"]
    assert set(last["top"][0]) == {"id", "text", "p"}
    p = np.exp(logits.astype(np.float64) - logits.max())  # the model's own distribution
    assert last["p_target"] == pytest.approx(p[report["target"]["id"]] / p.sum(), rel=1e-4)

    attention = np.array(report["attention"])
    assert attention.shape == (tiny_gpt2.n_layer, tiny_gpt2.n_head, n + 1)
    np.testing.assert_allclose(attention.sum(-1), 1, atol=1e-5)

    a = report["attribution"]
    assert np.array(a["heads"]).shape == (tiny_gpt2.n_layer, tiny_gpt2.n_head)
    assert len(a["mlps"]) == tiny_gpt2.n_layer
    total = a["embeddings"] + np.sum(a["heads"]) + np.sum(a["mlps"]) + a["bias"]
    assert total == pytest.approx(float(logits[report["target"]["id"]]), abs=1e-4)


def test_position_target_and_against(tiny_model_dir, tiny_gpt2, gpt2_tokenizer, capsys) -> None:
    args = [TEXT, "-m", str(tiny_model_dir), "--position", "2", "--target", " Paris"]
    report = lens_json(capsys, *args, "--against", " London")
    paris, london = gpt2_tokenizer.encode(" Paris")[0], gpt2_tokenizer.encode(" London")[0]
    assert report["position"] == 2 and report["target"] == {"id": paris, "text": " Paris"}
    assert np.array(report["attention"]).shape[-1] == 3  # keys 0..2
    logits = tiny_gpt2.forward(gpt2_tokenizer.encode(TEXT)[:3])[2]
    assert report["attribution"]["logit"] == pytest.approx(float(logits[paris]), abs=1e-4)
    (against,) = report["against"]
    assert against["id"] == london
    difference = against["logit_difference"]
    assert difference["logit"] == pytest.approx(float(logits[paris] - logits[london]), abs=1e-4)
    parts = difference["embeddings"] + np.sum(difference["heads"]) + np.sum(difference["mlps"])
    assert parts + difference["bias"] == pytest.approx(difference["logit"], abs=1e-4)


def test_tables(tiny_model_dir, capsys) -> None:
    assert main(["lens", TEXT, "-m", str(tiny_model_dir), "--against", " London"]) == 0
    out = capsys.readouterr().out
    assert "Logit lens" in out and "embed" in out and "KL" in out
    assert "Attended most" in out and "Largest pushes" in out and "and not ␣London" in out
    assert "= logit" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([TEXT, "--position", "5"], "position 5 is outside the text: its 5 tokens are 0-4"),
        ([TEXT, "--position", "-1"], "position -1 is outside the text"),
        (
            [TEXT, "--target", " Paris is"],
            "' Paris is' is not one token: it tokenises to 2: ' Paris' ' is'",
        ),  # fmt: skip
        ([TEXT, "--against", ""], "--against '' is not one token: it tokenises to 0"),
        (["", "--target", "x"], "nothing to look inside: the text is empty"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tiny_model_dir, capsys, args, message) -> None:
    assert main(["lens", *args, "-m", str(tiny_model_dir)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and message in err and len(err.strip().splitlines()) == 1


def test_smollm2_paris(capsys) -> None:
    """The bundled model, where the answer appears only in the last layers."""
    report = lens_json(capsys, TEXT, "-m", "smollm2", "--against", " London")
    assert report["target"]["text"] == " Paris"
    layers = report["layers"]
    assert len(layers) == 31 and layers[-1]["rank_target"] == 1
    assert layers[10]["rank_target"] > 100  # not yet in the middle of the network
    assert np.array(report["attention"]).shape == (30, 9, 5)  # 9 query heads over 3 kv heads
    assert report["against"][0]["logit_difference"]["logit"] > 0
