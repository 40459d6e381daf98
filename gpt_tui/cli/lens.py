"""`gpt-tui lens`: look inside one prediction (the logit lens, attention, attribution)."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from rich.markup import escape
from rich.table import Table

from gpt_tui.cli.console import load_for_cli, read_prompt, stderr, stdout
from gpt_tui.cli.flags import (
    INTERVENTIONS_REMOTE,
    add_intervention_flags,
    interventions_for,
    n_top_type,
    wants_interventions,
)
from gpt_tui.display import heat, short_percent, visible_token
from gpt_tui.engine.hooked import with_interventions
from gpt_tui.engine.trace import Attribution
from gpt_tui.errors import InputError
from gpt_tui.models.names import is_remote
from gpt_tui.playground.look_inside import (
    LensReport,
    contributions,
    layer_name,
    report_for_text,
    report_json,
)


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
    add_intervention_flags(p)
    p.set_defaults(run=_run_lens)


def _run_lens(args: argparse.Namespace) -> int:
    text = read_prompt(args.text)
    if wants_interventions(args) and args.model and is_remote(args.model):
        raise InputError(INTERVENTIONS_REMOTE)
    loaded = load_for_cli(args.model, None)
    special = "all" if args.special else "none"
    model = loaded.model
    if wants_interventions(args):
        # The model under them for every pass of the report; a mean ablation averages over TEXT
        interventions = interventions_for(args, model, loaded.tokenizer, special)
        stderr.print(f"[interventions: {interventions.describe()}]", style="dim", markup=False)
        model = with_interventions(model, interventions, loaded.tokenizer.encode(text, special))
    # A bad position or target is an InputError, found once the text is tokenised: exit code 2
    report = report_for_text(model, loaded.tokenizer, text, args.position, args.target,
                             args.against, n_top=args.top, allowed_special=special)  # fmt: skip
    if args.json:
        sys.stdout.write(json.dumps(report_json(report), ensure_ascii=False) + "\n")
        return 0
    for table in report_tables(report):
        stdout.print(table)
        stdout.print()
    return 0


def _show(text: str) -> str:
    return escape(visible_token(text))


def lens_table(report: LensReport, n_top: int = 3) -> Table:
    title = f"Logit lens: {_show(report.target.text)} at position {report.position}"
    title += f' ("{_show(report.tokens[report.position].text)}")'
    table = Table(title=title, title_justify="left", show_edge=False)
    for name, width in [("layer", 5), ("", 1), ("p target", 8), ("rank", 6), ("entropy", 7),
                        ("KL", 6)]:  # fmt: skip
        table.add_column(name, justify="right", no_wrap=True, min_width=width)
    table.add_column("top predictions", no_wrap=True, overflow="ellipsis")
    for row in report.layers:
        s = row.score
        top = "  ".join(f"{_show(a.text)} {short_percent(a.prob)}" for a in s.top[:n_top])
        table.add_row(layer_name(row), f"[green]{heat(s.prob)}[/]", short_percent(s.prob),
                      str(s.rank), f"{s.entropy:.2f}", f"{row.kl:.2f}", top)  # fmt: skip
    return table


def attention_table(report: LensReport, n_keys: int = 3) -> Table:
    table = Table(title="Attended most (mean over heads)", title_justify="left", show_edge=False)
    table.add_column("layer", justify="right")
    table.add_column("tokens (weight)")
    for layer, weights in enumerate(report.attention.mean(axis=1), start=1):  # [n_key] each
        keys = np.argsort(weights)[::-1][:n_keys]
        cells = [f"{_show(report.tokens[k].text)} #{k} {weights[k]:.2f}" for k in keys]
        table.add_row(str(layer), "  ".join(cells))
    return table


def attribution_table(a: Attribution, title: str, n: int = 10) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False)
    table.add_column("part")
    table.add_column("logit", justify="right")
    largest = sorted(contributions(a), key=lambda part: -abs(part[1]))[:n]
    for name, value in largest:
        table.add_row(name, f"[{'green' if value > 0 else 'red'}]{value:+.3f}[/]")
    table.add_row("[dim]all parts[/]", f"[dim]{a.total:+.3f} = logit {a.logit:+.3f}[/]")
    return table


def report_tables(report: LensReport) -> list[Table]:
    target = _show(report.target.text)
    tables = [
        lens_table(report),
        attention_table(report),
        attribution_table(report.attribution, f"Largest pushes on the logit of {target}"),
    ]
    for token, a in report.contrasts:
        title = f"Why {target} and not {_show(token.text)}: largest parts of the difference"
        tables.append(attribution_table(a, title))
    return tables
