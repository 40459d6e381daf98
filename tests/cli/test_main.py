"""The headless CLI: generate's output modes, and one-line errors with the right exit codes."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys

import pytest

from gpt_tui.cli import main


def generate(model_dir, prompt: str, flags: str) -> int:
    """`gpt-tui generate PROMPT -m MODEL_DIR FLAGS`, flags written as on a command line."""
    return main(["generate", prompt, "-m", str(model_dir), *flags.split(" ")])


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GPT_TUI_HOME", str(tmp_path / "home"))


def test_the_first_run_on_a_machine_says_it_measured_the_kernel_plan(tiny_model_dir, capsys):
    assert generate(tiny_model_dir, "Hi", "--max-tokens 2") == 0
    assert "measured this machine's kernel plan" in capsys.readouterr().err
    assert generate(tiny_model_dir, "Hi", "--max-tokens 2") == 0  # kept: nothing measured now
    assert "kernel plan" not in capsys.readouterr().err


def test_generate_streams_text_and_reports_why_it_stopped(tiny_model_dir, capsys) -> None:
    code = main(
        [
            "generate",
            "Hello, my name is",
            "-m",
            str(tiny_model_dir),
            "--max-tokens",
            "7",
            "--seed",
            "1",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0 and out.endswith("\n") and len(out) > 1
    assert "7 tokens" in err and "stopped: max tokens" in err


def test_same_seed_same_text(tiny_model_dir, capsys) -> None:
    args = [
        "generate",
        "Once upon",
        "-m",
        str(tiny_model_dir),
        "--max-tokens",
        "12",
        "--seed",
        "5",
        "--temperature",
        "0.9",
        "--top-p",
        "0.9",
    ]
    main(args)
    first = capsys.readouterr().out
    main(args)
    assert capsys.readouterr().out == first


def test_json_prints_one_event_per_line(tiny_model_dir, capsys) -> None:
    assert generate(tiny_model_dir, "Hi", "--max-tokens 3 --json --top 4 --temperature 0") == 0
    lines = capsys.readouterr().out.splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["index"] for e in events] == [0, 1, 2]
    assert all(len(e["top"]) == 4 and e["rank"] == 1 for e in events)
    assert events[-1]["finish_reason"] == "length"


def test_show_probs_prints_a_table(tiny_model_dir, capsys) -> None:
    assert generate(tiny_model_dir, "Hi", "--max-tokens 3 --show-probs --seed 3") == 0
    out = capsys.readouterr().out
    assert "What the model thought" in out and "top alternatives" in out and "%" in out


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--temperature", "nan"], "temperature must be a finite number"),
        (["--temperature", "-1"], "temperature must be in [0, 2]"),
        (["--top-p", "1.5"], "top_p must be in (0, 1]"),
        (["--top-p", "0"], "top_p must be in (0, 1]"),
        (["--max-tokens", "0"], "max_tokens must be in [1, 65536]"),
        (["--max-tokens", "-3"], "max_tokens must be in"),
        (["--top-k", "2.5"], "top_k must be a whole number"),
        (["--seed", "abc"], "seed must be a whole number"),
        (["--temprature", "1"], "unrecognized arguments"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(flags, message, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "x", *flags])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_stdin_prompt_and_invalid_utf8(tiny_model_dir, tmp_path) -> None:
    env_args = [
        sys.executable,
        "-m",
        "gpt_tui",
        "generate",
        "-",
        "-m",
        str(tiny_model_dir),
        "--max-tokens",
        "3",
        "--temperature",
        "0",
    ]
    env = {"GPT_TUI_HOME": str(tmp_path / "h"), "PATH": ""}
    ok = subprocess.run(env_args, input="Hello 👋 world".encode(), capture_output=True, env=env)
    assert ok.returncode == 0, ok.stderr.decode()
    bad = subprocess.run(env_args, input=b"abc\xff\xfe", capture_output=True, env=env)
    assert bad.returncode == 2
    assert b"stdin is not valid UTF-8 (byte 0xff at offset 3)" in bad.stderr


def test_emoji_only_and_huge_prompts_work(tiny_model_dir, capsys) -> None:
    assert main(["generate", "🎉🎉🎉", "-m", str(tiny_model_dir), "--max-tokens", "2"]) == 0
    capsys.readouterr()
    huge = "word " * 10_000  # 50,000 characters: far past the 64-token context
    assert main(["generate", huge, "-m", str(tiny_model_dir), "--max-tokens", "2"]) == 0
    assert "the window slides" in capsys.readouterr().err


def test_stop_string_flag_with_escape(tiny_model_dir, capsys) -> None:
    assert generate(tiny_model_dir, "a", "--max-tokens 40 --seed 9 --stop \\n") == 0
    assert "\n" not in capsys.readouterr().out.rstrip("\n")


def test_score_prints_each_token_and_the_perplexity(tiny_model_dir, capsys) -> None:
    assert main(["score", "The cat sat on the mat.", "-m", str(tiny_model_dir)]) == 0
    out = capsys.readouterr().out
    assert "perplexity" in out and "␣cat" in out and "rank buckets" in out


def test_score_json(tiny_model_dir, capsys) -> None:
    assert main(["score", "Hello world", "-m", str(tiny_model_dir), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["token_id"] for r in rows[:-1]] == [15496, 995]
    assert rows[-1]["summary"]["tokens"] == 2 and rows[-1]["summary"]["perplexity"] > 1


def test_bench_reports_every_figure(tiny_model_dir, capsys) -> None:
    args = [
        "bench",
        "-m",
        str(tiny_model_dir),
        "--prefill",
        "16",
        "--long-context",
        "40",
        "--steps",
        "3",
        "--batch",
        "3",
        "--replan",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    for label in (
        "kernel plan:",
        "measured, kept in",  # --replan: measured now, whatever was kept before
        "decode, 1 row",
        "decode, 2 rows",
        "decode, 8 rows",
        "prefill, chunks of 256",
        "decode attention",
        "prefill attention",
        "8 positions @ 16 ctx",
        "weight streaming",
        "decode roofline",
        "prefill (16 tokens)",
        "weight products alone",
        "decode @ 16 ctx",
        "decode @ 40 ctx",
        "decode 3 streams",
        "peak memory",
    ):
        assert label in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"format": "gpt-tui-session", "version": 1, "tree": ', "is damaged (invalid JSON"),
        ('{"format": "gpt-tui-session", "version": 7}', "newer gpt-tui (format version 7)"),
        ('{"some": "json"}', "is not a gpt-tui session file"),
    ],
)
def test_open_refuses_a_bad_session_file_in_one_line(tmp_path, content, message, capsys) -> None:
    path = tmp_path / "session.json"
    path.write_text(content)
    assert main(["--open", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and str(path) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_open_a_missing_file(tmp_path, capsys) -> None:
    assert main(["--open", str(tmp_path / "nowhere.json")]) == 2
    assert "no session file at" in capsys.readouterr().err


@pytest.mark.parametrize("flags", ["--temperature 0", "--seed 4 --temperature 0.9 --top-k 50"])
def test_speculation_on_or_off_prints_the_same_text(tiny_model_dir, capsys, flags) -> None:
    prompt = "one two three one two three one two"
    assert generate(tiny_model_dir, prompt, f"--max-tokens 30 {flags} --speculative off") == 0
    plain = capsys.readouterr()
    assert generate(tiny_model_dir, prompt, f"--max-tokens 30 {flags} --speculative lookup") == 0
    fast = capsys.readouterr()
    assert fast.out == plain.out
    assert "tokens/pass" in fast.err and "tokens/pass" not in plain.err


def test_a_draft_model_with_another_tokenizer_is_refused(tiny_model_dir, capsys) -> None:
    assert generate(tiny_model_dir, "Hi", "--speculative smollm2") == 2
    err = capsys.readouterr().err
    assert "the draft model smollm2 cannot draft for tiny-gpt2" in err
    assert "tokenizers differ" in err


def test_an_empty_speculative_setting_is_refused(tiny_model_dir, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "Hi", "-m", str(tiny_model_dir), "--speculative", " "])
    assert exit_.value.code == 2
    assert "speculative must be off, lookup or a draft model" in capsys.readouterr().err


def test_bench_speculative_compares_speeds_and_texts(tiny_model_dir, capsys) -> None:
    # the tiny model as its own draft: every draft holds, and the texts must be the same
    args = ["bench", "-m", str(tiny_model_dir), "--speculative", str(tiny_model_dir)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "positions per pass" in out and "drafting breaks even at" in out
    assert "copy+edit," in out and "open-ended," in out  # (the table wraps the names)
    assert "yes" in out and "NO" not in out


# --- one exit-code rule for every command -------------------------------------------------------
# 2: the command line asks for something that cannot be (a flag's value, the text, the model or
# the server named, a draft model that cannot draft for this one); 1: what was asked is fine,
# doing it failed (the network, the disk, a damaged cache, a server's error).

NOT_UTF8 = b"abc\xff\xfe"


def run_cli(argv: list[str], monkeypatch, stdin: bytes = b"") -> int:
    """`gpt-tui ARGV` in-process with `stdin` as its standard input; argparse's exit included."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


BAD_INPUT = [
    # (argv, stdin, what the one line says); TINY stands for the tiny model's directory
    (["generate", "x", "--stop", ""], b"", "stop must be non-empty text"),
    (["generate", "x", "--temperature", "nan"], b"", "temperature must be a finite number"),
    (["generate", "-", "-m", "TINY"], NOT_UTF8, "stdin is not valid UTF-8 (byte 0xff at offset 3)"),
    (["score", "-", "-m", "TINY"], NOT_UTF8, "stdin is not valid UTF-8"),
    (["lens", "-", "-m", "TINY"], NOT_UTF8, "stdin is not valid UTF-8"),
    (["score", "", "-m", "TINY"], b"", "nothing to score: the text is empty"),
    (["score", "  \n", "-m", "TINY"], b"", "nothing to score: the text is empty"),
    (["lens", "", "-m", "TINY"], b"", "nothing to look inside: the text is empty"),
    (["lens", "Hello", "-m", "TINY", "--position", "9"], b"", "position 9 is outside the text"),
    (["generate", "x", "-m", "125M"], b"", "no model '125M' (did you mean '124M'?)"),
    (["score", "x", "-m", "smollm3"], b"", "no model 'smollm3' (did you mean 'smollm2'?)"),
    (["lens", "x", "-m", "nosuchmodel"], b"", "no model 'nosuchmodel'"),
    (["bench", "-m", "nosuchmodel"], b"", "no model 'nosuchmodel'"),
    (["download", "nosuchmodel"], b"", "no model 'nosuchmodel'"),
    (["rm", "nosuchmodel"], b"", "no model 'nosuchmodel'"),
    (["rm", "smollm2"], b"", "smollm2 is bundled with gpt-tui"),
    (["generate", "x", "-m", "NOT_A_MODEL"], b"", "is not a model: expected"),
    (["score", "x", "-m", "NOT_A_MODEL"], b"", "is not a model: expected"),
    (["lens", "x", "-m", "NOT_A_MODEL"], b"", "is not a model: expected"),
    (["generate", "x", "-m", "MISSING"], b"", "does not exist"),
    (["generate", "-m", "TINY", "--system", "be brief"], b"", "--system needs --chat"),
    (["generate", "x", "-m", "TINY", "--chat", "y"], b"", "give either a PROMPT or --chat"),
    (["generate", "-m", "TINY", "--chat", " "], b"", "--chat needs a message"),
    (["generate", "x", "-m", "TINY", "--speculative", "nosuchdraft"], b"", "no model"),
    (["generate", "x", "-m", "TINY", "--speculative", "smollm2"], b"", "tokenizers differ"),
    (["models", "notaurl"], b"", "notaurl is not a server's URL"),
    (["models", "http://"], b"", "not a server URL: 'http://'"),
    (["generate", "x", "-m", "http://"], b"", "not a server URL: 'http://'"),
    (["--open", "MISSING"], b"", "no session file at"),
    # the sampling flags of issue 24, in generate and sampler
    (["generate", "x", "--typical-p", "0"], b"", "typical_p must be in (0, 1]"),
    (["sampler", "x", "--xtc-threshold", "1.5"], b"", "xtc_threshold must be in [0, 1]"),
    (["sampler", "x", "--dry-allowed-length", "0"], b"", "dry_allowed_length must be in [1, 50]"),
    (["sampler", "x", "--mirostat-eta", "0"], b"", "mirostat_eta must be in (0, 1]"),
    (["generate", "x", "--sampler-order", "top_k,nucleus"], b"", "unknown sampler stage 'nucl"),
    (["sampler", "x", "--sampler-order", "top_k,top_k"], b"", "names 'top_k' twice"),
    (["generate", "x", "--logit-bias", "5"], b"", "logit-bias takes TOKEN=BIAS"),
    (["sampler", "x", "--logit-bias", "5=101"], b"", "must be a number in [-100, 100]"),
    (["sampler", "x", "--logit-bias", "5=nan"], b"", "must be a number in [-100, 100]"),
    (["sampler", "x", "-m", "TINY", "--logit-bias", " Parisian=2"], b"", "is not one token"),
    (["generate", "x", "-m", "TINY", "--ban", " Parisian"], b"", "--ban ' Parisian' is not one"),
    (["generate", "x", "-m", "TINY", "--ban", "99999"], b"", "not a token of this model"),
    (["generate", "x", "-m", "TINY", "--preset", "nope"], b"", "no preset 'nope'; known:"),
    (["sampler", "x", "-m", "TINY", "--preset", "model"], b"", "this model ships none"),
    (["sampler", "x", "--save-preset", "greedy", "-m", "TINY"], b"", "is a built-in preset"),
    (["sampler", "x", "--save-preset", "a b", "-m", "TINY"], b"", "a preset's name is letters"),
    (["sampler", "Hello", "-m", "TINY", "--position", "9"], b"", "position 9 is outside the text"),
    (["sampler", "Hello", "-m", "TINY", "--position", "-1"], b"", "position -1 is outside"),
    (["sampler", "", "-m", "TINY"], b"", "nothing to sample after: the text is empty"),
    (["sampler", "-", "-m", "TINY"], NOT_UTF8, "stdin is not valid UTF-8"),
    (["sampler", "x", "--draws", "-5"], b"", "draws must be a whole number"),
    (["sampler", "x", "--top", "0"], b"", "top must be a whole number in [1, 1000]"),
    (["sampler", "x", "-m", "nosuchmodel"], b"", "no model 'nosuchmodel'"),
    (["presets", "--delete", "nope"], b"", "no preset 'nope'"),
    (["sampler", "x", "-m", "http://127.0.0.1:9/v1"], b"", "sampler view needs the local engine"),
    (["generate", "x", "--ban-string", ""], b"", "ban-string must be non-empty text"),
]


@pytest.mark.parametrize(("argv", "stdin", "message"), BAD_INPUT, ids=lambda v: repr(v)[:40])
def test_bad_input_is_one_line_and_exit_2_for_every_command(
    argv, stdin, message, tiny_model_dir, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("GPT_TUI_PLAN", "default")  # no plan measured: nothing but the error
    (tmp_path / "not-a-model").mkdir()
    paths = {"TINY": str(tiny_model_dir), "NOT_A_MODEL": str(tmp_path / "not-a-model"),
             "MISSING": str(tmp_path / "missing")}  # fmt: skip
    code = run_cli([paths.get(a, a) for a in argv], monkeypatch, stdin)
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(("error: ", "gpt-tui")), err


def test_a_failure_that_is_not_the_command_lines_is_exit_1(monkeypatch, capsys) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    assert run_cli(["download", "124M", "--base-url", closed], monkeypatch) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach 127.0.0.1") and len(err.strip().splitlines()) == 1
