"""`gpt-tui patch` (playground/patching.py and cli/patch.py): the JSON contract equals
engine/interventions.py's `patch`, the tables, and one-line errors with exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gpt_tui.cli import main
from gpt_tui.engine.interventions import patch

CLEAN = "When Mary and John went to the store, John gave a drink to"
CORRUPT = "When John and Mary went to the store, Mary gave a drink to"


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GPT_TUI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GPT_TUI_PLAN", "default")  # the plan's measuring is tested elsewhere


def test_json_equals_the_engines_patch(tiny_model_dir, tiny_gpt2, gpt2_tokenizer, capsys) -> None:
    argv = ["patch", CLEAN, CORRUPT, "--answer", " Mary", "--against", " John",
            "-m", str(tiny_model_dir), "--json"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 1
    got = json.loads(out)
    clean, corrupt = gpt2_tokenizer.encode(CLEAN), gpt2_tokenizer.encode(CORRUPT)
    mary, john = gpt2_tokenizer.encode(" Mary"), gpt2_tokenizer.encode(" John")
    want = patch(tiny_gpt2, clean, corrupt, mary[0], john[0])
    n_layer, n_head = tiny_gpt2.n_layer, tiny_gpt2.n_head
    assert np.shape(got["resid_pre"]) == (n_layer, len(clean))
    assert np.shape(got["heads"]) == (n_layer, n_head)
    assert np.shape(got["mlps"]) == (n_layer,)
    assert got["clean"] == pytest.approx(want.clean) and got["corrupted"] == pytest.approx(
        want.corrupted
    )
    for name in ("resid_pre", "heads", "mlps"):
        np.testing.assert_allclose(got[name], getattr(want, name), rtol=1e-6, atol=1e-9)
    # what patching means: the residual entering block 0 is the token's embedding, so where
    # the two texts have the same token the patch changes nothing
    same = [p for p in range(len(clean)) if clean[p] == corrupt[p]]
    assert same and all(abs(got["resid_pre"][0][p]) < 1e-5 for p in same)
    assert any(abs(got["resid_pre"][0][p]) > 1e-3 for p in range(len(clean)) if p not in same)
    assert [t["id"] for t in got["clean_tokens"]] == clean
    assert got["answer"] == {"id": mary[0], "text": " Mary"}


def test_tables_and_progress(tiny_model_dir, capsys) -> None:
    argv = ["patch", CLEAN, CORRUPT, "--answer", " Mary", "--against", " John",
            "-m", str(tiny_model_dir)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Residual entering each block at each position" in out
    assert "Each head's output" in out and "MLP" in out
    assert "logit(␣Mary) - logit(␣John)" in out or "logit( Mary) - logit( John)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([CLEAN, "When John and Mary went", "--answer", " Mary", "--against", " John"],
         "same token length: CLEAN has 14 tokens, CORRUPT 5"),
        ([CLEAN, CORRUPT, "--answer", " Mary Jane", "--against", " John"],
         "--answer ' Mary Jane' is not one token"),
        ([CLEAN, CORRUPT, "--answer", " Mary", "--against", " Mary"], "the same token"),
        ([CLEAN, CORRUPT, "--against", " John"], "the following arguments are required"),
        (["-", "-", "--answer", " Mary", "--against", " John"], "only one of CLEAN and CORRUPT"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(tiny_model_dir, args, message, capsys) -> None:
    try:
        code = main(["patch", *args, "-m", str(tiny_model_dir)])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_a_server_cannot_be_patched(capsys) -> None:
    argv = ["patch", "a b", "b a", "--answer", " a", "--against", " b", "-m", "http://127.0.0.1:9"]
    assert main(argv) == 2
    assert "patching needs the local engine" in capsys.readouterr().err
