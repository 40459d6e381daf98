"""`gpt-tui bench`: the engine's speed on this machine, the kernel plan, speculation."""

from __future__ import annotations

import argparse
import os
import time
from typing import TYPE_CHECKING

from rich import box
from rich.table import Table

from gpt_tui.cli.console import load_for_cli, stderr, stdout
from gpt_tui.engine import GPT2
from gpt_tui.engine.plan import PLAN_ENV, cpu_name
from gpt_tui.models.catalog import CATALOG, GPT2_HPARAMS
from gpt_tui.models.random_weights import random_gpt2_params
from gpt_tui.settings import SPECULATIVE_LOOKUP, check_speculative

if TYPE_CHECKING:
    from gpt_tui.bench.speed import BenchResult
    from gpt_tui.engine.plan import Plan
    from gpt_tui.models.loading import LoadedModel


def add_bench_parser(sub: argparse._SubParsersAction) -> None:

    p = sub.add_parser(
        "bench",
        help="measure prefill and decode speed against the memory-bandwidth roofline",
        description="Measure prefill and decode tokens/s, and decode as a share of the roofline "
        "set by this machine's weight-streaming bandwidth.",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--model", "-m", help="a model name or path (default: the last one used)")
    which.add_argument(
        "--random",
        choices=list(GPT2_HPARAMS),
        metavar="SIZE",
        help="random weights of a GPT-2 size: " + ", ".join(GPT2_HPARAMS),
    )
    p.add_argument("--prefill", type=int, default=512, metavar="N", help="prompt length (512)")
    p.add_argument(
        "--long-context",
        type=int,
        default=900,
        metavar="N",
        help="context for the long decode measurement (900)",
    )
    p.add_argument("--steps", type=int, default=32, metavar="N", help="decode steps per figure")
    p.add_argument(
        "--replan",
        action="store_true",
        help="measure this machine's kernel plan for the model again (it is kept and reused)",
    )
    p.add_argument(
        "--batch",
        type=int,
        default=1,
        choices=range(1, 9),
        metavar="N",
        help="also decode N streams at once (1-8) and compare with one",
    )
    p.add_argument(
        "--speculative",
        nargs="?",
        const="lookup",
        metavar="lookup|MODEL",
        help="instead: speculative against plain decoding (chat turns; passes of 1-8 positions; "
        "with MODEL, or a size of random weights with --random, that draft model's break-even)",
    )
    p.set_defaults(run=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from gpt_tui.bench.speed import peak_rss_bytes, run_bench

    if args.replan:  # read by the model's constructor: the plan is measured as it is built
        os.environ[PLAN_ENV] = "replan"
    start = time.perf_counter()
    if args.random:
        with stderr.status(f"building random {args.random} weights"):
            hparams = GPT2_HPARAMS[args.random]
            params = random_gpt2_params(hparams, streaming=True)
            model, name = GPT2(params, hparams), f"random {args.random}"
            tokenizer = _gpt2_tokenizer_if_available()
    else:
        loaded = load_for_cli(args.model, None)
        model, name, tokenizer = loaded.model, loaded.name, loaded.tokenizer
    load_s = time.perf_counter() - start
    rss_loaded = peak_rss_bytes()
    if args.speculative:
        return _run_speculative_bench(args, model, name, tokenizer, None if args.random else loaded)
    with stderr.status("measuring") as status:
        result = run_bench(
            model,
            name,
            prefill_tokens=args.prefill,
            long_context=args.long_context,
            decode_steps=args.steps,
            n_batch=args.batch,
            tokenizer=tokenizer,
            report=lambda step: status.update(f"measuring {step}"),
        )
    stdout.print(_bench_table(result, load_s, rss_loaded))
    stdout.print(_plan_table(model.planned.plan))
    return 0


def _run_speculative_bench(
    args: argparse.Namespace, model, name: str, tokenizer, loaded: LoadedModel | None
) -> int:
    import platform

    from gpt_tui.bench import speculative as bs

    choice = check_speculative(args.speculative)
    draft = draft_name = None
    if choice != SPECULATIVE_LOOKUP:
        with stderr.status(f"loading the draft model {choice}"):
            draft, draft_name = bs.draft_model(choice, loaded, random=bool(args.random))
    stdout.print(f"[bold]{name}[/], speculative decoding; CPU: {cpu_name() or platform.machine()}")
    with stderr.status("timing passes of 1 to 8 positions"):
        cost = bs.measure_verification(model, draft=draft)
    table = Table(box=box.SIMPLE, show_edge=False)
    table.add_column("positions per pass", justify="right")
    table.add_column("ms", justify="right")
    table.add_column("x one step", justify="right")
    table.add_column(f"{draft_name} drafting breaks even at" if draft else "", justify="right")
    for n, seconds in cost.pass_s.items():
        even = cost.break_even(n - 1) if n > 1 else None
        table.add_row(
            str(n),
            f"{seconds * 1e3:.1f}",
            f"{cost.ratios[n]:.2f}",
            "" if not draft or n == 1 else ("never" if even is None else f"{even:.0%}"),
        )
    stdout.print(table)
    if draft is not None:
        stdout.print(
            f"a step of {draft_name}: {cost.draft_step_s * 1e3:.1f} ms, "
            f"{cost.draft_ratio:.2f}x the target's"
        )
    cases = []
    for case in bs.bench_cases(model, tokenizer, draft, draft_name, random=bool(args.random)):
        with stderr.status(f"{case.name}: plain and speculative, interleaved"):
            cases.append(case.run())
    if cases:
        stdout.print(_speculative_table(cases))
    return 0


def _speculative_table(cases) -> Table:
    table = Table(box=box.SIMPLE, show_edge=False)
    table.add_column("case", no_wrap=True)
    for title in ("tokens", "plain t/s", "spec t/s", "x", "t/pass", "held", "same"):
        table.add_column(title, justify="right")
    for c in cases:
        table.add_row(
            c.name,
            str(c.tokens),
            f"{c.plain_tok_s:.1f}",
            f"{c.speculative_tok_s:.1f}",
            f"{c.speedup:.2f}x",
            f"{c.tokens_per_pass:.2f}",
            f"{c.acceptance:.0%}",
            "yes" if c.identical else "[red]NO[/]",
        )
    return table


def _gpt2_tokenizer_if_available():
    """GPT-2's tokenizer for random GPT-2 weights: from any cached GPT-2 model, else none."""
    from gpt_tui.models.availability import is_cached
    from gpt_tui.models.cache import model_path
    from gpt_tui.models.loading import load_tokenizer

    for spec in CATALOG:
        if spec.kind == "gpt2" and is_cached(spec.name):
            return load_tokenizer(model_path(spec.name))
    return None


def _bench_table(r: BenchResult, load_s: float, rss_loaded: int) -> Table:

    title = f"gpt-tui bench: {r.model} on {cpu_name()}"
    table = Table(title=title, title_justify="left", show_edge=False)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("note", style="dim")
    mb = 1e6
    share_short = r.share_of_roofline(r.decode_short_tok_s)
    share_long = r.share_of_roofline(r.decode_long_tok_s)
    spread = " ({:.1f}-{:.1f})".format(*r.bandwidth_range) if r.bandwidth_range else ""
    rows = [
        ("load / build", f"{load_s:.2f} s", ""),
        ("weights read per token", f"{r.weight_bytes / mb:,.0f} MB", "float32"),
        (
            "weight streaming",
            f"{r.bandwidth_gb_s:.1f} GB/s",
            "x @ W, W 512 MB; median of readings between the decode runs" + spread,
        ),
        ("decode roofline", f"{r.roofline_tok_s:.1f} tok/s", "bandwidth / weights per token"),
        (f"prefill ({r.prefill_tokens} tokens)", f"{r.prefill_tok_s:,.0f} tok/s", ""),
        (
            "weight products alone",
            f"{r.products_s * 1e3:.2f} ms/token" if r.products_s else "n/a",
            f"{r.weight_bytes / r.products_s / 1e9:.1f} GB/s; they are "
            f"{r.decode_short_tok_s * r.products_s:.0%} of a decode step @ {r.short_context} ctx"
            if r.products_s
            else "",
        ),
        (
            f"decode @ {r.short_context} ctx",
            f"{r.decode_short_tok_s:.1f} tok/s",
            f"{1e3 / r.decode_short_tok_s:.2f} ms/token, {share_short:.0%} of roofline",
        ),
        (
            f"decode @ {r.long_context} ctx",
            f"{r.decode_long_tok_s:.1f} tok/s",
            f"{1e3 / r.decode_long_tok_s:.2f} ms/token, {share_long:.0%} of roofline",
        ),
        (
            "peak memory",
            f"{r.peak_rss_bytes / mb:,.0f} MB",
            f"{rss_loaded / mb:,.0f} MB after load; weights {r.weight_bytes / mb:,.0f} MB",
        ),
    ]
    if r.overhead_s is not None:
        share = r.overhead_s * r.decode_short_tok_s
        rows.insert(
            -1,
            (
                "generation overhead",
                f"{r.overhead_s * 1e3:.2f} ms/token",
                f"{share:.1%} of a decode step: sampling, top-10 report, detokenising",
            ),
        )
    if r.continuation_s:
        rows.insert(
            -1,
            (
                f"{r.continuation} positions @ {r.short_context} ctx",
                f"{r.continuation_s * 1e3:.2f} ms",
                f"{r.continuation_ratio:.2f}x a decode step of the same rounds "
                "(one pass with every position's logits: verifying drafted tokens)",
            ),
        )
    if r.decode_batch_steps_s:
        cost = r.decode_short_tok_s / r.decode_batch_steps_s
        rows.insert(
            -1,
            (
                f"decode {r.n_batch} streams @ {r.short_context} ctx",
                f"{r.decode_batch_steps_s * r.n_batch:.1f} tok/s",
                f"{1e3 / r.decode_batch_steps_s:.2f} ms/step = {cost:.2f}x one stream's step",
            ),
        )
    for row in rows:
        table.add_row(*row)
    return table


def _plan_table(plan: Plan) -> Table:
    """The kernel plan the bench ran with, and each candidate's time (FFTW's wisdom, shown)."""
    machine = plan.key.get("machine", {})
    title = (
        f"kernel plan: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, "
        f"NumPy {machine.get('numpy', '?')}, {machine.get('blas', '?')}\n{plan.source}"
    )
    if plan.measured_s:
        title += f" (measuring took {plan.measured_s:.1f} s)"
    table = Table(title=title, title_justify="left", show_edge=False)
    table.add_column("kind of work")
    table.add_column("the plan")
    table.add_column("candidates: fastest of the rounds", style="dim")
    by_kind: dict[str, list[str]] = {}
    for t in plan.timings:
        by_kind.setdefault(t.kind, []).append(f"{t.seconds * 1e3:7.2f} ms  {t.candidate}")
    for kind, chosen in plan.describe():
        measured = [line for k, lines in by_kind.items() if _same_kind(k, kind) for line in lines]
        table.add_row(kind, chosen, "\n".join(measured), end_section=True)
    return table


def _same_kind(measured: str, planned: str) -> bool:
    """Whether a timing's kind ("decode, 4 rows", "prefill, 256 rows", "decode attention, 1024
    keys") belongs to a plan row ("decode, 4 rows", "prefill, chunks of 256", ...)."""
    if planned.startswith(("decode attention", "prefill attention")):
        return measured.startswith(planned)
    if planned.startswith("prefill,"):
        return measured.startswith("prefill,")
    return measured == planned
