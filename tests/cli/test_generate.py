"""`gpt-tui generate` and `gpt-tui score` (gpt_tui/cli/generate.py): what depends on the model
loaded (the vocabulary's size, its tokenizer's rule for a first token), texts whose characters
span tokens, and the speed line."""

from __future__ import annotations

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
