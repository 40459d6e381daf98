"""The command line on a real OpenAI-compatible server (llama-cpp-python on 127.0.0.1)."""

from __future__ import annotations

import json

from gpt_tui.cli import main
from gpt_tui.settings import load_settings, settings_path


def test_generate_models_and_score_against_a_server(llama_server, capsys) -> None:
    url = llama_server.url
    flags = ["--max-tokens", "5", "--temperature", "0"]
    assert main(["generate", "The capital of France is", "-m", url, "--json", *flags]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 5 and all(0 < e["prob"] <= 1 and e["top"] for e in lines)
    assert main(["models", url]) == 0
    out = capsys.readouterr().out
    assert "llama-cpp-python" in out and "not here: look inside" in out
    assert main(["score", "Hello world", "-m", url]) == 2  # bad input: this model cannot score
    assert "cannot score a text with" in capsys.readouterr().err
    assert main(["generate", "Hi", "-m", url, "--speculative", "lookup", *flags]) == 2
    assert "speculative decoding needs the local engine" in capsys.readouterr().err


def test_the_api_key_is_sent_but_never_printed_or_kept(llama_server, capsys) -> None:
    secret = "sk-test-do-not-print-1234"
    url = llama_server.url.replace("http://", "http://user:hunter2@")
    assert main(["generate", "Hi", "-m", url, "--api-key", secret, "--max-tokens", "2"]) == 0
    captured = capsys.readouterr()
    assert secret not in captured.out + captured.err and "hunter2" not in captured.err
    settings, _ = load_settings()
    assert settings.model == llama_server.url  # remembered without the credentials
    written = settings_path().read_text()
    assert secret not in written and "hunter2" not in written


def test_sampling_flags_on_a_server(llama_server, capsys) -> None:
    url = llama_server.url
    greedy = ["--max-tokens", "1", "--temperature", "0"]
    assert main(["generate", "The capital of France is", "-m", url, *greedy]) == 0
    first = capsys.readouterr().out.rstrip("\n")
    assert main(["generate", "The capital of France is", "-m", url, *greedy, "--ban", first]) == 0
    out, err = capsys.readouterr()
    assert out.rstrip("\n") != first and "not applied" not in err  # the server read the ban
    biased = [*greedy, "--logit-bias", " London=100"]
    assert main(["generate", "The capital of France is", "-m", url, *biased]) == 0
    assert capsys.readouterr().out.rstrip("\n") == " London"
    assert main(["generate", "x", "-m", url, *greedy, "--typical-p", "0.5"]) == 0
    assert "not applied here: typical p: llama-cpp-python" in capsys.readouterr().err
    assert main(["generate", "x", "-m", url, *greedy, "--ban", "42"]) == 2  # ids mean nothing
    assert "on a server, give the token as its text" in capsys.readouterr().err
