"""Command line: `gpt-tui` opens the app; subcommands do the same work headless.

Each subcommand has an `add_<name>_parser` that declares its flags (in the module of its kind)
and a `_run_<name>` that does the work through the playground core (or, for lens, patch and bench,
the engine) and prints it. Every error is one line on stderr, and its exit code follows one rule
for all commands (`exit_code`): 2 when the command line asks for something that cannot be (a
flag's value, the text, the model, server or draft named), 1 when what was asked is fine but
doing it failed (the network, the disk, a damaged cache, a server's error), 130 on ctrl+c.

Every parser is built on every start, so a `_run_<name>` imports the model store, the backends,
the playground core and the bench when it runs, not at the top of its module: they load
requests, httpx and the model store's dependencies (0.25 s -> 0.65 s for `gpt-tui --help`,
measured), which `--help` and the other commands should not wait for; the app's Textual too.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gpt_tui import __version__
from gpt_tui.cli.bench import add_bench_parser
from gpt_tui.cli.console import stderr
from gpt_tui.cli.eval import add_eval_parser
from gpt_tui.cli.export import add_export_parser
from gpt_tui.cli.flags import add_api_key_flag
from gpt_tui.cli.generate import add_generate_parser, add_score_parser
from gpt_tui.cli.lens import add_lens_parser
from gpt_tui.cli.models import add_download_parser, add_models_parser, add_rm_parser
from gpt_tui.cli.patch import add_patch_parser
from gpt_tui.cli.presets import add_presets_parser
from gpt_tui.cli.sampler import add_sampler_parser
from gpt_tui.cli.serve import add_serve_parser
from gpt_tui.errors import (
    BackendError,
    DownloadError,
    GptTuiError,
    InputError,
    SessionFileError,
    SpeculationError,
    StorageError,
    UnknownModelError,
)

# What the command line got wrong; argparse's own errors (a flag's value) exit 2 the same way.
BAD_INPUT = (InputError, UnknownModelError, SpeculationError, SessionFileError)
# What fails while doing what was asked, even when wrapped in one of the above (a draft model
# that could not be downloaded is a SpeculationError caused by a DownloadError).
FAILURES = (DownloadError, StorageError, BackendError)


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
    parser.add_argument(
        "--open",
        metavar="FILE",
        dest="session_file",
        help="reopen a session saved in the app (ctrl+s), in its own model unless --model is given",
    )
    add_api_key_flag(parser)
    parser.set_defaults(run=_run_app)
    sub = parser.add_subparsers(
        title="commands", metavar="COMMAND", parser_class=_OneLineErrorParser
    )
    add_generate_parser(sub)
    add_score_parser(sub)
    add_eval_parser(sub)
    add_lens_parser(sub)
    add_sampler_parser(sub)
    add_patch_parser(sub)
    add_presets_parser(sub)
    add_bench_parser(sub)
    add_models_parser(sub)
    add_download_parser(sub)
    add_rm_parser(sub)
    add_export_parser(sub)
    add_serve_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except GptTuiError as exc:
        stderr.print(f"error: {exc}", markup=False)
        return exit_code(exc)
    except KeyboardInterrupt:
        stderr.print("interrupted", markup=False)
        return 130


def exit_code(exc: GptTuiError) -> int:
    """2 for bad input, 1 for a failure (the module's docstring states the rule)."""
    if isinstance(exc, FAILURES) or isinstance(exc.__cause__, FAILURES):
        return 1
    return 2 if isinstance(exc, BAD_INPUT) else 1


def _run_app(args: argparse.Namespace) -> int:
    from gpt_tui.tui.app import GptTuiApp  # Textual costs start-up time the subcommands don't need

    try:
        app = GptTuiApp(model=args.model, session=args.session_file, api_key=args.api_key)
    except SessionFileError as exc:  # damaged, or from a newer gpt-tui: like a bad argument
        stderr.print(f"error: {exc}", markup=False)
        return exit_code(exc)
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
