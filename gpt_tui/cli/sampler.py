"""`gpt-tui sampler`: what every sampling stage does to one position's distribution."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
from rich.table import Table
from rich.text import Text

from gpt_tui.cli.console import load_for_cli, read_prompt, show_token, stderr, stdout
from gpt_tui.cli.flags import (
    INTERVENTIONS_REMOTE,
    add_intervention_flags,
    add_sampling_flags,
    interventions_for,
    sampling_for,
    wants_interventions,
)
from gpt_tui.display import percent
from gpt_tui.engine.hooked import with_interventions
from gpt_tui.errors import InputError
from gpt_tui.models.names import is_remote
from gpt_tui.playground.sampler_report import (
    MAX_DRAWS,
    SamplerReport,
    changed_settings,
    final_top,
    report_json,
    sampler_report,
)

REMOTE = (
    "the sampler view needs the local engine: it runs every stage over the model's whole "
    "distribution, and a server sends only its top few tokens"
)


def _top_type(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"top must be a whole number in [1, 1000], not {text!r}")
    return int(text)


def _draws_type(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= MAX_DRAWS:
        raise argparse.ArgumentTypeError(
            f"draws must be a whole number in [0, {MAX_DRAWS:,}], not {text!r}"
        )
    return int(text)


def _position_type(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"position must be a whole number, not {text!r}") from None


def add_sampler_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sampler",
        help="what each sampling stage does to the next token's distribution",
        description="Show the distribution of the token after position N of TEXT at every "
        "sampling stage, in the order they run: the model's own, then one column per active "
        "stage, and the final distribution generation draws from. TEXT's tokens up to N are "
        "the context the penalties and DRY see (every one counts as generated). Takes every "
        "sampling flag of `generate`.",
    )
    p.add_argument("text", metavar="TEXT", help="the text; - reads stdin")
    p.add_argument("--model", "-m", help="model name or path (default: the last one used)")
    p.add_argument(
        "--position",
        type=_position_type,
        metavar="N",
        help="the token whose next-token distribution is shown (default: the last)",
    )
    p.add_argument(
        "--top",
        type=_top_type,
        default=10,
        metavar="K",
        help="tokens followed through the stages: the model's K likeliest (default 10)",
    )
    p.add_argument(
        "--draws",
        type=_draws_type,
        default=0,
        metavar="N",
        help="draw N times from the final distribution (with --seed) and count each token",
    )
    p.add_argument("--special", action="store_true", help="read special tokens in TEXT as such")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_sampling_flags(p)
    add_intervention_flags(p)
    p.set_defaults(run=_run_sampler)


def _run_sampler(args: argparse.Namespace) -> int:
    text = read_prompt(args.text)
    if not text:
        raise InputError("nothing to sample after: the text is empty")
    if args.model and is_remote(args.model):
        raise InputError(INTERVENTIONS_REMOTE if wants_interventions(args) else REMOTE)
    loaded = load_for_cli(args.model, None)
    model, tokenizer = loaded.model, loaded.tokenizer
    params = sampling_for(args, tokenizer, model.n_vocab, loaded.path, name=loaded.name)
    special = "all" if args.special else "none"
    ids = tokenizer.encode(text, special)
    if wants_interventions(args):  # every pass under them; a mean ablation averages over TEXT
        interventions = interventions_for(args, model, tokenizer, special)
        stderr.print(f"[interventions: {interventions.describe()}]", style="dim", markup=False)
        model = with_interventions(model, interventions, ids)
    start = time.perf_counter()
    report = sampler_report(model, tokenizer, ids, params, args.position, k=args.top,
                            n_draws=args.draws, seed=params.seed)  # fmt: skip
    elapsed = time.perf_counter() - start
    if args.json:
        sys.stdout.write(json.dumps(report_json(report, params), ensure_ascii=False) + "\n")
        return 0
    stdout.print(stage_table(report))
    stdout.print(_summary(report, params))
    stderr.print(f"[computed in {elapsed:.2f} s; model {loaded.name}]", style="dim", markup=False)
    return 0


def stage_table(report: SamplerReport) -> Table:
    """Rows: the model's K likeliest tokens (then any of the final K likeliest not among them);
    columns: the model, each active stage, the draws. A removed token is struck and dimmed."""
    view = report.view
    after = report.tokens[report.position]
    title = f"The token after position {report.position} ({show_token(after.text)})"
    table = Table(title=title, title_justify="left", show_edge=False)
    table.add_column("token")
    for stage in view.stages:
        table.add_column(stage.name, justify="right")
    if report.counts is not None:
        table.add_column(f"draws\n(of {report.n_draws:,})", justify="right")
    followed = view.top_ids.tolist()
    rows = [*followed, *[i for i in final_top(view) if i not in set(followed)]]
    best = int(view.final_top_ids[0])
    for i in rows:
        name = show_token(report.token_text(i))
        if i == best:
            name = f"[bold]{name}[/]"
        cells: list[str | Text] = [name]
        before = 0.0
        for stage in view.stages:
            p = float(stage.probs[i])
            if p == 0.0 and before > 0.0:  # removed here: what it had, struck
                cells.append(Text(percent(before), style="dim strike"))
            elif p == 0.0:  # removed before
                cells.append(Text("·", style="dim"))
            else:
                cells.append(Text(percent(p), style=_style(p)))
            before = p
        if report.counts is not None:
            cells.append(f"{int(report.counts[i]):,}")
        table.add_row(*cells)
    table.add_section()
    kept: list[str | Text] = ["[dim]possible tokens[/]"]
    kept += [f"[dim]{s.kept:,}[/]" for s in view.stages]
    entropy: list[str | Text] = ["[dim]entropy (bits)[/]"]
    entropy += [f"[dim]{max(s.entropy, 0.0) / np.log(2) + 0.0:.2f}[/]" for s in view.stages]
    if report.counts is not None:
        kept.append(f"[dim]{int(np.count_nonzero(report.counts)):,} drawn[/]")
        entropy.append(f"[dim]seed {report.seed}[/]")
    table.add_row(*kept)
    table.add_row(*entropy)
    return table


def _style(p: float) -> str:
    """Colour by probability, as the output's probability colouring does."""
    if p >= 0.5:
        return "green"
    if p >= 0.1:
        return "yellow"
    if p >= 0.01:
        return "dark_orange"
    return "red"


def _summary(report: SamplerReport, params: Any) -> str:
    view = report.view
    order = " → ".join(view.order) if view.order else "none (every sampler is off)"
    settings = changed_settings(params)
    shown = ", ".join(f"{k} {v}" for k, v in settings.items() if k != "sampler_order")
    lines = [f"[dim]stages applied: {order}[/]"]
    if shown:
        lines.append(f"[dim]settings: {shown}[/]")
    if view.speculation:
        lines.append(f"[dim]{view.speculation}[/]")
    return "\n".join(lines)
