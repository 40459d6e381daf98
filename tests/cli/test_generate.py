"""`gpt-tui generate` and `gpt-tui score` (gpt_tui/cli/generate.py): what depends on the model
loaded (the vocabulary's size, its tokenizer's rule for a first token), texts whose characters
span tokens, and the speed line."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from gpt_tui.cli import main

# A tiny SmolLM2 with the real tokenizer (49,152 tokens, no BOS put before a text)
SMOLLM2_TINY = Path(__file__).resolve().parents[1] / "fixtures" / "hf" / "smollm2"


@pytest.fixture(autouse=True)
def _no_plan(monkeypatch) -> None:
    monkeypatch.setenv("GPT_TUI_PLAN", "default")  # the plan's first-run line is tested elsewhere


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's refusals
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_top_k_is_bounded_by_the_loaded_models_vocabulary(capsys) -> None:
    code, _, err = run(capsys, "generate", "Hi", "-m", str(SMOLLM2_TINY), "--top-k", "50000")
    *progress, line = err.strip().splitlines()  # the first run converts the model: its progress
    assert code == 2 and all("converting" in p for p in progress), err
    assert (
        line == "error: --top-k: top_k must be in [0, 49152] (the vocabulary of smollm2), not 50000"
    )
    code, out, err = run(capsys, "generate", "Hi", "-m", str(SMOLLM2_TINY), "--top-k", "49152",
                         "--max-tokens", "2")  # fmt: skip
    assert code == 0, err


@pytest.mark.parametrize("words", [10, 10_000])  # 10,000 words are 50,000 characters
def test_the_speed_line_reports_the_prompt_and_the_generation_apart(
    tiny_model_dir, gpt2_tokenizer, capsys, words: int
) -> None:
    # the tokens the model read: all of a short prompt, the end a slid window keeps of a long one
    read = min(len(gpt2_tokenizer.encode("word " * words)), 48)  # 48: 3/4 of a 64-token context
    code, _, err = run(capsys, "generate", "word " * words, "-m", str(tiny_model_dir),
                       "--max-tokens", "3", "--speculative", "off")  # fmt: skip
    assert code == 0, err
    line = err.strip().splitlines()[-1]
    assert f"[prompt: {read} tokens in " in line and " tokens/s); generated: 3 tokens at " in line
    assert "stopped: max tokens" in line


TEXT = "Hello world, café 😀 ok"  # GPT-2 splits the emoji's four bytes over two tokens


def test_score_shows_a_character_split_over_tokens_once_on_the_token_completing_it(
    tiny_model_dir, capsys
) -> None:
    code, out, err = run(capsys, "score", TEXT, "-m", str(tiny_model_dir))
    assert code == 0, err
    assert "\ufffd" not in out and out.count("😀") == 2  # its table row, and the text reprinted
    assert TEXT in out
    code, out, err = run(capsys, "score", "a😀b", "-m", str(tiny_model_dir))
    assert code == 0 and "\ufffd" not in out and out.count("😀") == 2
    assert "bytes F0 9F 98" in out  # the token that only starts it shows its bytes
    code, out, _ = run(capsys, "score", TEXT, "-m", str(tiny_model_dir), "--json")
    rows = [json.loads(line) for line in out.splitlines()[:-1]]
    assert "".join(r["text"] for r in rows) == TEXT and "\ufffd" not in out


@pytest.mark.parametrize("model", ["TINY", "SMOLLM2"])
def test_score_scores_the_first_token_only_after_a_bos_the_tokenizer_puts_first(
    tiny_model_dir, capsys, model: str
) -> None:
    # GPT-2's and SmolLM2's tokenizers put none before a text: their first token has no score,
    # as in the app's prompt scores (tests/playground/test_core.py: one perplexity for both)
    path = str(tiny_model_dir if model == "TINY" else SMOLLM2_TINY)
    code, out, err = run(capsys, "score", "In 1969, astronauts", "-m", path, "--json")
    assert code == 0, err
    *rows, summary = [json.loads(line) for line in out.splitlines()]
    summary = summary["summary"]
    assert rows[0]["position"] == 0 and rows[0]["scored"] is False and "prob" not in rows[0]
    assert all(r["scored"] for r in rows[1:]) and not summary["prepended_bos"]
    assert summary["tokens"] == len(rows) and summary["scored"] == len(rows) - 1
    logprobs = [r["logprob"] for r in rows[1:]]
    assert summary["perplexity"] == pytest.approx(math.exp(-sum(logprobs) / len(logprobs)))
    code, out, _ = run(capsys, "score", "In 1969, astronauts", "-m", path)
    assert "the first token has no score: nothing precedes it" in out


def test_score_scores_every_token_after_a_bos_the_tokenizer_puts_first(
    tiny_model_dir, bos_first_tokenizer_dir, tmp_path, capsys
) -> None:
    model = Path(shutil.copytree(tiny_model_dir, tmp_path / "bos-first"))
    for name in ("encoder.json", "vocab.bpe"):
        (model / name).unlink()
    for tokenizer_file in bos_first_tokenizer_dir.iterdir():
        shutil.copy(tokenizer_file, model)
    code, out, err = run(capsys, "score", "In 1969, astronauts", "-m", str(model), "--json")
    assert code == 0, err
    *rows, summary = [json.loads(line) for line in out.splitlines()]
    assert summary["summary"]["prepended_bos"] and all(r["scored"] for r in rows)
    assert "".join(r["text"] for r in rows) == "In 1969, astronauts"  # not the BOS
    code, out, _ = run(capsys, "score", "In 1969, astronauts", "-m", str(model))
    assert "every token is scored, after the <|endoftext|>" in out


def test_score_help_states_the_rule(capsys) -> None:
    code, out, _ = run(capsys, "score", "--help")
    assert code == 0
    assert "scored only where that tokenizer puts a beginning-of-text token" in " ".join(
        out.split()
    )
