"""The shared flags: every bad value is one line on stderr and exit code 2, before any model
loads; good values reach the sampling settings as typed."""

from __future__ import annotations

import pytest

from gpt_tui.cli import build_parser, main
from gpt_tui.cli.flags import sampling_from_args


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--stop", ""], "stop must be non-empty text"),
        (["--stop", "\\x"], "stop '\\\\x' has a broken escape"),
        (["--stop", "ok", "--stop", ""], "stop must be non-empty text"),
    ],
)
def test_a_bad_stop_is_one_line_and_exit_2(flags, message, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "x", *flags])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("\\n", "\n"), ("café", "café"), ("a😀\\tb", "a😀\tb"), ("\\\\n", "\\n")],
)
def test_stop_reads_escapes_and_keeps_other_characters(typed: str, meant: str) -> None:
    args = build_parser().parse_args(["generate", "x", "--stop", typed])
    assert sampling_from_args(args).stop == (meant,)
