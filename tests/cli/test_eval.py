"""`gpt-tui eval`: outputs, bad input (one line, exit 2, the other files still evaluated),
ctrl+c, and models on a server."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_openai_server import FakeOpenAIServer

from gpt_tui.cli import main
from gpt_tui.settings import load_settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REFERENCE = json.loads((FIXTURES / "eval_reference.json").read_text())
GPT2 = str(FIXTURES / "hf" / "gpt2")
LLAMA3 = str(FIXTURES / "hf" / "llama3")
QWEN2 = str(FIXTURES / "hf" / "qwen2")


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "text.txt"
    path.write_text(REFERENCE["text"], encoding="utf-8")
    return path


@pytest.fixture
def fake() -> Iterator[FakeOpenAIServer]:
    server = FakeOpenAIServer()
    yield server
    server.close()


def error_lines(err: str) -> list[str]:
    """stderr's errors (loading a model may add notes: a kernel plan measured, ...)."""
    return [line for line in err.splitlines() if line.startswith("error")]


def json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_json_is_one_object_per_file_and_model(text_file: Path, capsys):
    code = main(["eval", str(text_file), "-m", GPT2, "-m", LLAMA3, "--ctx", "24", "--stride",
                 "10", "--json"])  # fmt: skip
    assert code == 0
    rows = json_lines(capsys.readouterr().out)
    assert [(r["file"], r["model"]) for r in rows] == [(str(text_file), m) for m in (GPT2, LLAMA3)]
    case = next(c for c in REFERENCE["cases"] if (c["model"], c["ctx"]) == ("gpt2", 24))
    expected = -sum(case["logprobs"]) / len(case["logprobs"])
    gpt2 = rows[0]
    assert gpt2["tokens"] == len(case["logprobs"]) and gpt2["nll"] == pytest.approx(expected)
    assert gpt2["perplexity"] == pytest.approx(math.exp(expected))
    assert gpt2["bits_per_byte"] == pytest.approx(
        gpt2["nll"] * gpt2["tokens"] / math.log(2) / gpt2["bytes"]
    )
    settings = (gpt2["ctx"], gpt2["stride"], gpt2["partial"], gpt2["scored_by"])
    assert settings == (24, 10, False, "engine")
    assert "against" not in gpt2


def test_against_a_reference_in_json_and_csv(text_file: Path, capsys):
    assert main(["eval", str(text_file), "-m", QWEN2, "--against", LLAMA3, "--ctx", "40",
                 "--json"]) == 0  # fmt: skip
    (row,) = json_lines(capsys.readouterr().out)
    against = row["against"]
    assert against["reference"] == LLAMA3 and against["kl_mean"] > 0
    assert 0 <= against["same_top1"] <= 1
    assert list(against["delta_p"]) == ["mean", "p1", "p5", "p50", "p95", "p99"]
    assert main(["eval", str(text_file), "-m", QWEN2, "--against", LLAMA3, "--ctx", "40",
                 "--csv"]) == 0  # fmt: skip
    (csv_row,) = csv.DictReader(io.StringIO(capsys.readouterr().out))
    assert float(csv_row["kl_mean"]) == pytest.approx(against["kl_mean"])
    assert float(csv_row["delta_p_p99"]) == pytest.approx(against["delta_p"]["p99"])
    assert csv_row["tokens"] == str(row["tokens"]) and csv_row["partial"] == "False"
    assert load_settings()[0].model == QWEN2  # the next run's default: the model, not REF


def test_the_table(text_file: Path, capsys, monkeypatch):
    monkeypatch.chdir(text_file.parent)
    assert main(["eval", "text.txt", "-m", GPT2]) == 0
    out = capsys.readouterr().out
    assert "perplexity" in out and "bits/byte" in out and "text.txt" in out
    assert main(["eval", "text.txt", "-m", QWEN2, "--against", LLAMA3, "--ctx", "40"]) == 0
    out = capsys.readouterr().out
    assert "Against llama3" in out and "KL (nats)" in out and "Δp 99%" in out
    assert "…" not in out  # 80 columns hold both tables whole


def test_bad_files_are_one_line_each_and_the_others_still_evaluated(
    text_file: Path, tmp_path: Path, capsys
):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blob.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (tmp_path / "latin1.txt").write_bytes(b"na\xefve")
    files = [tmp_path / "missing.txt", tmp_path / "empty.txt", text_file,
             tmp_path / "blob.bin", tmp_path / "latin1.txt"]  # fmt: skip
    assert main(["eval", *map(str, files), "-m", GPT2, "--json"]) == 2
    captured = capsys.readouterr()
    assert [r["file"] for r in json_lines(captured.out)] == [str(text_file)]
    errors = error_lines(captured.err)
    assert len(errors) == 4
    for word in ("no such file", "empty", "binary", "not valid UTF-8"):
        assert any(word in line for line in errors)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--ctx", "10", "--stride", "20"], "--stride 20 is larger than the window (--ctx 10)"),
        (["--stride", "65"], "--stride 65 is larger than the window (--ctx 64)"),
        (["--ctx", "100"], "--ctx 100 is larger than"),
        (["--against", LLAMA3], f"--against {LLAMA3}: its tokenizer is not"),
    ],
)
def test_bad_settings_are_one_line_and_exit_2(text_file: Path, capsys, flags, message):
    assert main(["eval", str(text_file), "-m", GPT2, "--json", *flags]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = error_lines(captured.err)
    assert message in line


def test_ctrl_c_prints_what_was_scored_marked_partial(tmp_path: Path, text_file: Path):
    """SIGINT once the progress bar shows the second file: the first is printed whole, the
    second as partial. (TTY_INTERACTIVE: rich draws the bar into the pipe as into a terminal.)"""
    long = tmp_path / "long.txt"
    long.write_text(REFERENCE["text"] * 100, encoding="utf-8")  # ~12,000 windows
    command = [sys.executable, "-m", "gpt_tui", "eval", str(text_file), str(long), "-m", GPT2,
               "--ctx", "64", "--stride", "1", "--json"]  # fmt: skip
    env = {**os.environ, "GPT_TUI_HOME": str(tmp_path / "home"), "TTY_INTERACTIVE": "1",
           "TTY_COMPATIBLE": "1", "COLUMNS": "160"}  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    shown = b""
    while b"long.txt" not in shown:
        chunk = os.read(process.stderr.fileno(), 4096)
        assert chunk, shown.decode(errors="replace")
        shown += chunk
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert b"/12" in shown and b"tokens" in shown  # the bar: done / total
    first, second = json_lines(out.decode())
    assert first["file"] == str(text_file) and not first["partial"]
    assert second["file"] == str(long) and second["partial"]
    assert b"marked partial" in err


def test_a_server_with_echo_scores_each_window(text_file: Path, fake: FakeOpenAIServer, capsys):
    """The fake server's echo gives every word after the first p = 0.6."""
    text = "The quick brown fox jumps over the lazy dog and runs far away."
    text_file.write_text(text)
    assert main(["eval", str(text_file), "-m", fake.url, "--ctx", "6", "--stride", "3",
                 "--json"]) == 0  # fmt: skip
    captured = capsys.readouterr()
    (row,) = json_lines(captured.out)
    assert row["scored_by"] == "the server's echo" and "echo" in captured.err
    n_words = 14
    assert row["tokens"] == n_words - 1
    assert row["perplexity"] == pytest.approx(1 / 0.6)
    assert len(fake.posts("/v1/completions")) >= 4  # a request per window


def test_a_server_without_prompt_scoring_says_why_not(text_file: Path, capsys):
    server = FakeOpenAIServer(reject_logprobs=True)
    try:
        assert main(["eval", str(text_file), "-m", server.url, "--json"]) == 1
    finally:
        server.close()
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = error_lines(captured.err)
    assert line.startswith(f"error: cannot evaluate {server.url}: ")


def test_against_needs_local_models(text_file: Path, fake: FakeOpenAIServer, capsys):
    assert main(["eval", str(text_file), "-m", fake.url, "--against", GPT2]) == 2
    assert "full distributions" in capsys.readouterr().err


def test_llama_cpp_pythons_server_cannot_and_says_why(llama_server, text_file: Path, capsys):
    """Its echo scores each token from the next position's distribution: the probe refuses it."""
    assert main(["eval", str(text_file), "-m", llama_server.url, "--json"]) == 1
    captured = capsys.readouterr()
    (line,) = error_lines(captured.err)
    assert captured.out == "" and line.startswith(f"error: cannot evaluate {llama_server.url}: ")
