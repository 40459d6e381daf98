"""Command line: `gpt-tui` opens the app; subcommands do the same work headless.

Each subcommand has an `_add_<name>_parser` that declares its flags and a `_run_<name>` that does
the work. Library errors (`GptTuiError`) become one line on stderr and exit code 1; bad flags one
line and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.console import Console

from gpt_tui import __version__
from gpt_tui.errors import GptTuiError

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class _OneLineErrorParser(argparse.ArgumentParser):
    """argparse prints the whole usage on a bad flag; one line that says what is wrong is enough."""

    def error(self, message: str) -> None:  # type: ignore[override]
        stderr.print(f"{self.prog}: error: {message} (see `{self.prog} --help`)", markup=False)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrorParser(
        prog="gpt-tui",
        description="A terminal playground for GPT-style language models.",
    )
    parser.add_argument("--version", action="version", version=f"gpt-tui {__version__}")
    parser.add_argument("--model", "-m", help="model name or path to open the app with")
    parser.set_defaults(run=_run_app)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_OneLineErrorParser)
    _add_generate_parser(sub)
    _add_bench_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except GptTuiError as exc:
        stderr.print(f"error: {exc}", markup=False)
        return 1
    except KeyboardInterrupt:
        stderr.print("interrupted", markup=False)
        return 130


# --- app -----------------------------------------------------------------------------------------


def _run_app(args: argparse.Namespace) -> int:
    from gpt_tui.tui.app import GptTuiApp  # Textual costs start-up time the subcommands don't need

    GptTuiApp(model=args.model).run()
    return 0


# --- generate ------------------------------------------------------------------------------------


def _add_generate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate text from a prompt, streaming to stdout")
    p.set_defaults(run=_run_generate)


def _run_generate(args: argparse.Namespace) -> int:
    raise NotImplementedError


# --- bench ---------------------------------------------------------------------------------------


def _add_bench_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure prefill and decode speed against the roofline")
    p.set_defaults(run=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    raise NotImplementedError


if __name__ == "__main__":
    sys.exit(main())
