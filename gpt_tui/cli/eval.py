"""`gpt-tui eval`: perplexity and bits per byte of files under models, and KL against a reference.

Bad input (a file that is missing, empty, binary or not UTF-8; a stride larger than the window;
a reference with another tokenizer) is one line on stderr and exit code 2, and the other files
are still evaluated. ctrl+c stops between slices and prints what was scored, marked partial.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from gpt_tui.cli.console import open_for_cli, stderr, stdout
from gpt_tui.cli.flags import add_api_key_flag
from gpt_tui.errors import GptTuiError, InputError
from gpt_tui.playground.evaluation import ECHO, EvalResult, FileEval, read_text_file

CSV_FIELDS = (
    "file", "model", "tokens", "nll", "perplexity", "bits_per_byte", "bytes", "ctx", "stride",
    "partial", "scored_by", "reference", "kl_mean", "same_top1", "delta_p_mean", "delta_p_p1",
    "delta_p_p5", "delta_p_p50", "delta_p_p95", "delta_p_p99",
)  # fmt: skip

EXIT_INTERRUPTED = 130


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number of tokens")
    return value


def add_eval_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="perplexity and bits per byte of files under one or more models",
        description="Perplexity of each FILE under each model, over windows of --ctx tokens "
        "moved by --stride (each token scored once, as in transformers' guide 'Perplexity of "
        "fixed-length models'); with --against, KL divergence, same top-1 and Δp against a "
        "reference model, as llama.cpp's perplexity --kl-divergence reports them.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="UTF-8 text files")
    p.add_argument(
        "--model",
        "-m",
        action="append",
        dest="models",
        metavar="MODEL",
        help="a model name, path or server URL; repeat for several (default: the last one used)",
    )
    p.add_argument(
        "--ctx",
        type=_positive,
        metavar="N",
        help="window, in tokens (default: the model's context; with --against, the smaller one)",
    )
    p.add_argument(
        "--stride",
        type=_positive,
        metavar="S",
        help="tokens a window moves by (default: half the window)",
    )
    p.add_argument(
        "--against",
        metavar="REF",
        help="a reference model with the same tokenizer: KL(REF || model), same top-1, Δp",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object per (file, model)")
    out.add_argument("--csv", action="store_true", help="one CSV row per (file, model)")
    add_api_key_flag(p)
    p.set_defaults(run=_run_eval)


@dataclass
class _Outcome:
    results: list[EvalResult] = field(default_factory=list)
    bad_input: bool = False
    failed: bool = False
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return 2 if self.bad_input else 1 if self.failed else 0


def _run_eval(args: argparse.Namespace) -> int:
    outcome = _Outcome()
    if args.ctx is not None and args.stride is not None and args.stride > args.ctx:
        return _bad(f"--stride {args.stride} is larger than the window (--ctx {args.ctx})")
    texts: dict[str, str] = {}
    for file in args.files:
        try:
            texts[file] = read_text_file(file)
        except InputError as exc:
            _say_bad(exc, outcome)
    if not texts:
        return outcome.exit_code
    # The reference first: opening a model makes it the default of the next run, and that
    # should be the (last) model evaluated, not the reference.
    reference = open_for_cli(args.against, None, args.api_key) if args.against else None
    backends = [open_for_cli(name, None, args.api_key) for name in args.models or [None]]
    evals = _plan(texts, backends, reference, args, outcome)
    if not evals:
        return outcome.exit_code
    if any(e.remote for e in evals):
        stderr.print(f"note: server models are scored with {ECHO} of each window", markup=False)
    writer = _Writer(args)
    start = time.perf_counter()
    _run_all(evals, outcome, writer)
    writer.close(outcome)
    _say_speed(outcome.results, time.perf_counter() - start)
    return outcome.exit_code


def _say_speed(results: list[EvalResult], elapsed: float) -> None:
    """Tokens scored per second, and the positions the windows computed for them (a stride
    below the window computes the overlap again)."""
    scored = sum(r.tokens for r in results)
    if not scored or elapsed <= 0:
        return
    positions = sum(r.positions for r in results)
    stderr.print(
        f"[{scored:,} tokens scored in {elapsed:.1f}s, {scored / elapsed:,.0f} tokens/s; "
        f"{positions:,} positions computed, {positions / elapsed:,.0f}/s]",
        style="dim",
        markup=False,
    )


def _plan(
    texts: dict[str, str],
    backends: list[tuple[str, Any]],
    reference: tuple[str, Any] | None,
    args: argparse.Namespace,
    outcome: _Outcome,
) -> list[FileEval]:
    """Every (file, model) that can be evaluated; one line for each that cannot."""
    evals = []
    refused: set[str] = set()  # say a model-wide reason once, not once per file
    for name, backend in backends:
        why_not = backend.capabilities.why_not("prompt_scoring")
        if why_not:
            stderr.print(f"error: cannot evaluate {name}: {why_not}", markup=False)
            outcome.failed = True
            continue
        for file, text in texts.items():
            try:
                e = FileEval(file, text, name, backend, ctx=args.ctx, stride=args.stride,
                             reference=reference)  # fmt: skip
                evals.append(e)
            except InputError as exc:
                if not str(exc).startswith(f"{file}:"):
                    if str(exc) in refused:
                        continue
                    refused.add(str(exc))
                _say_bad(exc, outcome)
            except GptTuiError as exc:  # a server that could not split the text into tokens
                stderr.print(f"error: {file} · {name}: {exc}", markup=False)
                outcome.failed = True
    return evals


def _run_all(evals: list[FileEval], outcome: _Outcome, writer: _Writer) -> None:
    total = sum(e.total for e in evals)
    current: FileEval | None = None  # begun and not yet written: partial if ctrl+c comes now

    def finish(e: FileEval) -> None:
        result = e.result()
        outcome.results.append(result)
        writer.write(result)

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TextColumn("tokens"),
        _TokenRateColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
        redirect_stdout=False,  # JSON and CSV lines go to stdout, not above the bar on stderr
        disable=not stderr.is_terminal,  # a pipe or a file gets no bar (nor its blank line)
    ) as progress:
        task = progress.add_task("scoring", total=total)
        try:
            for e in evals:
                current = e
                progress.update(task, description=f"{_short(e.file)} · {_short(e.model_name)}")
                try:
                    for n in e.run():
                        progress.advance(task, n)
                except GptTuiError as exc:
                    current = None
                    stderr.print(f"error: {e.file} · {e.model_name}: {exc}", markup=False)
                    outcome.failed = True
                    continue
                current = None
                finish(e)
        except KeyboardInterrupt:
            outcome.interrupted = True
            if current is not None:
                finish(current)
            stderr.print("interrupted: what was scored so far is marked partial", markup=False)


class _TokenRateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} tok/s", style="progress.data.speed")


class _Writer:
    """JSON lines and CSV rows as each result is ready; the table at the end."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.mode = "json" if args.json else "csv" if args.csv else "table"
        self.csv = None
        if self.mode == "csv":
            self.csv = csv.DictWriter(sys.stdout, fieldnames=CSV_FIELDS, lineterminator="\n")
            self.csv.writeheader()

    def write(self, result: EvalResult) -> None:
        if self.mode == "json":
            sys.stdout.write(json.dumps(result.as_dict(), ensure_ascii=False) + "\n")
        elif self.csv is not None:
            self.csv.writerow(_csv_row(result))
        sys.stdout.flush()

    def close(self, outcome: _Outcome) -> None:
        if self.mode == "table" and outcome.results:
            for table in _tables(outcome.results):
                stdout.print(table)


def _csv_row(result: EvalResult) -> dict[str, Any]:
    row = {k: v for k, v in result.as_dict().items() if k != "against"}
    against = result.against or {}
    row["reference"] = result.reference or ""
    row["kl_mean"] = against.get("kl_mean", "")
    row["same_top1"] = against.get("same_top1", "")
    for key, value in against.get("delta_p", {}).items():
        row[f"delta_p_{key}"] = value
    return {name: "" if row.get(name) is None else row.get(name) for name in CSV_FIELDS}


def _tables(results: list[EvalResult]) -> list[Table]:
    """Perplexity, and (with --against) the divergence figures in a table of their own: the
    two side by side are too wide for a terminal. Models by their last path part."""
    tables = [_table("Perplexity", ("tokens", "nll (nats)", "perplexity", "bits/byte"))]
    for r in results:
        tokens = f"{r.tokens:,}" + (" (partial)" if r.partial else "")
        figures = [tokens, f"{r.nll:.4f}", f"{r.perplexity:.3f}", f"{r.bits_per_byte:.4f}"]
        tables[0].add_row(r.file, _short(r.model), *figures)
    against = [r for r in results if r.against]
    if against:
        title = f"Against {_short(str(against[0].reference))}: KL(REF || model), Δp = p - p_REF"
        # Δp's 5th and 95th percentiles only in --json and --csv: 80 columns hold six figures
        names = ("KL (nats)", "same top-1", "Δp mean", "Δp 1%", "Δp 50%", "Δp 99%")
        tables.append(_table(title, names))
        for r in against:
            a = r.against or {}
            delta = [f"{a['delta_p'][k]:+.2%}" for k in ("mean", "p1", "p50", "p99")]
            kl, same = f"{a['kl_mean']:.5f}", f"{a['same_top1']:.2%}"
            tables[1].add_row(r.file, _short(r.model), kl, same, *delta)
    return tables


def _table(title: str, figures: tuple[str, ...]) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False)
    table.add_column("file", overflow="fold")  # a path in full, over lines if need be
    table.add_column("model", overflow="fold")
    for name in figures:
        table.add_column(name, justify="right", no_wrap=True)
    return table


def _short(name: str) -> str:
    """A path's last part (a model's directory name, a file's name)."""
    return Path(name).name if "/" in name and "://" not in name else name


def _say_bad(exc: Exception, outcome: _Outcome) -> None:
    stderr.print(f"error: {exc}", markup=False)
    outcome.bad_input = True


def _bad(message: str) -> int:
    stderr.print(f"error: {message}", markup=False)
    return 2
