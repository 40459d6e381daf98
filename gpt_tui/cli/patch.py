"""`gpt-tui patch`: activation patching from a clean text into a corrupted one."""

from __future__ import annotations

import argparse
import json
import sys
import time

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.style import Style
from rich.table import Table
from rich.text import Text

from gpt_tui.cli.console import load_for_cli, read_prompt, stderr, stdout
from gpt_tui.display import patch_colour, visible_token
from gpt_tui.errors import InputError
from gpt_tui.models.names import is_remote
from gpt_tui.playground.patching import PatchReport, patch_json, patch_texts

REMOTE = (
    "patching needs the local engine: a server does not let gpt-tui change the model's activations"
)


def add_patch_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "patch",
        help="activation patching: which blocks, positions and heads carry what makes CLEAN "
        "and CORRUPT differ",
        description="Run CORRUPT with one activation at a time taken from CLEAN's run (the "
        "residual entering each block at each position; each head's output; each MLP's "
        "output), and measure logit(ANSWER) - logit(AGAINST) after the last token, normalised: "
        "1 where the patch restores CLEAN's difference, 0 where it leaves CORRUPT's. The two "
        "texts must have the same number of tokens. Blocks and heads count from 0.",
    )
    p.add_argument("clean", metavar="CLEAN", help="the clean text; - reads stdin")
    p.add_argument("corrupt", metavar="CORRUPT", help="the corrupted text, as many tokens")
    p.add_argument("--answer", required=True, metavar="TOKEN",
                   help="the token CLEAN should predict (a text that is one token)")  # fmt: skip
    p.add_argument("--against", required=True, metavar="TOKEN",
                   help="the token CORRUPT should predict instead (one token)")  # fmt: skip
    p.add_argument("--model", "-m", help="model name or path (default: the last one used)")
    p.add_argument("--special", action="store_true", help="read special tokens in the texts")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=_run_patch)


def _run_patch(args: argparse.Namespace) -> int:
    if args.clean == "-" and args.corrupt == "-":
        raise InputError("only one of CLEAN and CORRUPT can be read from stdin")
    clean, corrupt = read_prompt(args.clean), read_prompt(args.corrupt)
    if args.model and is_remote(args.model):
        raise InputError(REMOTE)
    loaded = load_for_cli(args.model, None)
    special = "all" if args.special else "none"
    start = time.perf_counter()
    with Progress(
        TextColumn("patching"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("block sweeps"),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    ) as bar:
        task = bar.add_task("patching", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = patch_texts(loaded.model, loaded.tokenizer, clean, corrupt, args.answer,
                             args.against, allowed_special=special, progress=progress)  # fmt: skip
    elapsed = time.perf_counter() - start
    if args.json:
        sys.stdout.write(json.dumps(patch_json(report), ensure_ascii=False) + "\n")
        return 0
    for table in patch_tables(report):
        stdout.print(table)
        stdout.print()
    stdout.print(_summary(report))
    stderr.print(f"[computed in {elapsed:.2f} s; model {loaded.name}]", style="dim", markup=False)
    return 0


def _show(text: str) -> str:
    return escape(visible_token(text))


def _cell(value: float) -> Text:
    """A normalised value as a heat-map cell: blue towards 1 (the patch restores the clean
    run), red towards -1, dark near 0; the value in hundredths."""
    bg = patch_colour(float(value))
    return Text(f"{round(100 * value):>4}", style=Style(bgcolor=bg, color="white"))


def patch_tables(report: PatchReport) -> list[Table]:
    p = report.patching
    n_layer, n_tok = p.resid_pre.shape
    answer, against = _show(report.answer.text), _show(report.against.text)
    resid = Table(title=f"Residual entering each block at each position (x100): CLEAN "
                  f"restores {answer} over {against}", title_justify="left", show_edge=False,
                  padding=0, collapse_padding=True)  # fmt: skip
    resid.add_column("block", justify="right")
    for pos in range(n_tok):
        resid.add_column(f"{pos:>4}", justify="right")
    for layer in range(n_layer):
        resid.add_row(str(layer), *(_cell(v) for v in p.resid_pre[layer]))
    heads = Table(title="Each head's output, all positions (x100)", title_justify="left",
                  show_edge=False, padding=0, collapse_padding=True)  # fmt: skip
    heads.add_column("block", justify="right")
    for h in range(p.heads.shape[1]):
        heads.add_column(f"{'H' + str(h):>4}", justify="right")
    heads.add_column(f"{'MLP':>5}", justify="right")
    for layer in range(n_layer):
        heads.add_row(
            str(layer), *(_cell(v) for v in p.heads[layer]), Text(" ") + _cell(p.mlps[layer])
        )
    return [resid, heads]


def _summary(report: PatchReport) -> str:
    p = report.patching
    positions = "  ".join(
        f"{i}:{_show(c.text)}" + ("" if c.id == d.id else f"→{_show(d.text)}")
        for i, (c, d) in enumerate(zip(report.clean, report.corrupt, strict=True))
    )
    answer, against = _show(report.answer.text), _show(report.against.text)
    lines = [
        f"[dim]positions (clean→corrupt where they differ): {positions}[/]",
        f"[dim]logit({answer}) - logit({against}): clean {p.clean:+.3f}, corrupted "
        f"{p.corrupted:+.3f}; 100 = the clean difference restored, 0 = the corrupted kept[/]",
    ]
    if p.clean == p.corrupted:
        lines.append("[yellow]the two runs have the same difference: nothing to restore[/]")
    return "\n".join(lines)
