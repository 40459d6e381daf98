"""`gpt-tui export`: a saved session as a page to share (or as Markdown), without the app."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gpt_tui.cli.console import stderr
from gpt_tui.errors import SessionFileError, StorageError


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a saved session (ctrl+s) as one HTML page to share, or as Markdown",
        description="Write a session saved in the app (ctrl+s) as one self-contained HTML page "
        "(tokens coloured by probability, rank or surprisal, their alternatives, every branch, "
        "the settings and model), or as Markdown. The app writes both beside the JSON already.",
    )
    p.add_argument("session", metavar="SESSION.json", help="the session file")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--html", action="store_true", help="write the page")
    kind.add_argument("--markdown", action="store_true", help="write the Markdown account")
    p.add_argument(
        "--output",
        "-o",
        metavar="PATH",
        help="where to write it ('-' for standard output; default: beside the session file)",
    )
    p.set_defaults(run=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from gpt_tui.playground.session import load, to_markdown
    from gpt_tui.playground.session_files import write_export
    from gpt_tui.playground.session_page import session_page

    source = Path(args.session).expanduser()
    session = load(source)
    text = session_page(session) if args.html else to_markdown(session)
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    suffix = ".html" if args.html else ".md"
    target = Path(args.output).expanduser() if args.output else source.with_suffix(suffix)
    if target.resolve() == source.resolve():
        raise SessionFileError(f"{target} is the session itself: name another file with -o")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_export(text, target, "cannot write")
    except OSError as exc:
        raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc
    except SessionFileError as exc:  # the disk's failure, not the command line's
        raise StorageError(str(exc)) from exc
    stderr.print(f"wrote {target}", markup=False)
    return 0
