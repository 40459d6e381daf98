"""`gpt-tui lens`: look inside one prediction (the logit lens, attention, attribution)."""

from __future__ import annotations

import argparse
import json
import sys

from gpt_tui.cli.console import load_for_cli, read_prompt, stderr, stdout
from gpt_tui.cli.flags import n_top_type


def add_lens_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lens",
        help="look inside one prediction: logit lens, attention, logit attribution",
        description="Look inside the model's prediction after token N of TEXT: the logit lens "
        "(each layer's residual decoded), the attention from N, and the direct logit attribution "
        "of the target token to each head and MLP.",
    )
    p.add_argument("text", metavar="TEXT", help="the text; - reads stdin")
    p.add_argument("--model", "-m", help="model name or path (default: the last one used)")
    p.add_argument("--position", type=int, metavar="N", help="the token examined (default: last)")
    p.add_argument("--target", metavar="TOKEN", help="the token followed (default: the top-1)")
    p.add_argument(
        "--against",
        action="append",
        default=[],
        metavar="TOKEN",
        help="also attribute the target's logit minus this token's (repeatable)",
    )
    p.add_argument(
        "--top", type=n_top_type, default=5, metavar="K", help="predictions per layer (default 5)"
    )
    p.add_argument("--special", action="store_true", help="read special tokens in TEXT as such")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=_run_lens)


def _run_lens(args: argparse.Namespace) -> int:
    from gpt_tui.errors import InputError
    from gpt_tui.lens import report_for_text, report_json, report_tables

    text = read_prompt(args.text)
    loaded = load_for_cli(args.model, None)
    special = "all" if args.special else "none"
    try:
        report = report_for_text(loaded.model, loaded.tokenizer, text, args.position, args.target,
                                 args.against, n_top=args.top, allowed_special=special)  # fmt: skip
    except InputError as exc:  # a bad argument, found once the text is tokenised
        stderr.print(f"error: {exc}", markup=False)
        return 2
    if args.json:
        sys.stdout.write(json.dumps(report_json(report), ensure_ascii=False) + "\n")
        return 0
    for table in report_tables(report):
        stdout.print(table)
        stdout.print()
    return 0
