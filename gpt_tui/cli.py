"""Command line: `gpt-tui` opens the app; subcommands do the same work headless.

Each subcommand has an `_add_<name>_parser` that declares its flags and a `_run_<name>` that does
the work. Library errors (`GptTuiError`) become one line on stderr and exit code 1; bad flags one
line and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from gpt_tui import __version__
from gpt_tui.display import percent, visible_token
from gpt_tui.engine.generate import TokenEvent
from gpt_tui.engine.sampling import RANGES, SamplingParams
from gpt_tui.errors import GptTuiError, SessionFileError

if TYPE_CHECKING:
    from gpt_tui.bench import BenchResult
    from gpt_tui.engine.plan import Plan
    from gpt_tui.engine.speculative import PassStats
    from gpt_tui.models.download import DownloadProgress
    from gpt_tui.models.store import LoadedModel

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
    parser.add_argument(
        "--open",
        metavar="FILE",
        dest="session_file",
        help="reopen a session saved in the app (ctrl+s), in its own model unless --model is given",
    )
    parser.set_defaults(run=_run_app)
    sub = parser.add_subparsers(
        title="commands", metavar="COMMAND", parser_class=_OneLineErrorParser
    )
    _add_generate_parser(sub)
    _add_score_parser(sub)
    _add_lens_parser(sub)
    _add_bench_parser(sub)
    _add_models_parser(sub)
    _add_download_parser(sub)
    _add_rm_parser(sub)
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

    try:
        app = GptTuiApp(model=args.model, session=args.session_file)
    except SessionFileError as exc:  # damaged, or from a newer gpt-tui: like a bad argument
        stderr.print(f"error: {exc}", markup=False)
        return 2
    app.run()
    return 0


# --- generate ------------------------------------------------------------------------------------


def _param_type(name: str) -> Callable[[str], float | int]:
    """An argparse type that validates a sampling flag against its range at the boundary."""
    spec = RANGES[name]

    def parse(text: str) -> float | int:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name} must be a number in {spec.describe()}, not {text!r}"
            ) from None
        try:
            SamplingParams(**{name: int(value) if spec.integer and value.is_integer() else value})
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return int(value) if spec.integer else value

    return parse


def _seed_type(text: str) -> int:
    try:
        return SamplingParams(seed=int(text)).seed  # type: ignore[return-value]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seed must be a whole number in [0, 2^63), not {text!r}"
        ) from None


def _n_top_type(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 100:
        raise argparse.ArgumentTypeError(f"top must be a whole number in [0, 100], not {text!r}")
    return int(text)


def _add_sampling_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling")
    for name, spec in RANGES.items():
        g.add_argument(
            "--" + name.replace("_", "-"),
            type=_param_type(name),
            default=None,
            metavar="N" if spec.integer else "X",
            help=f"{spec.help} {spec.describe()} (default {spec.default:g})",
        )
    g.add_argument("--seed", type=_seed_type, help="random seed; the same seed repeats a run")
    g.add_argument(
        "--stop",
        action="append",
        default=[],
        metavar="TEXT",
        help="stop before this text (repeatable; \\n for a newline)",
    )


def _sampling_from_args(args: argparse.Namespace) -> SamplingParams:
    values = {name: getattr(args, name) for name in RANGES if getattr(args, name) is not None}
    stop = tuple(s.encode().decode("unicode_escape") for s in args.stop)
    return SamplingParams(seed=args.seed, stop=stop, **values)


def _add_generate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="generate text from a prompt, streaming to stdout",
        description="Generate text from PROMPT (or stdin with -), streaming it to stdout.",
    )
    p.add_argument(
        "prompt",
        nargs="?",
        default="",
        metavar="PROMPT",
        help="the prompt; - reads stdin; empty: unconditional generation",
    )
    p.add_argument("--model", "-m", help="model name or path (default: the last one used)")
    p.add_argument("--chat", metavar="TEXT", help="a user message, in the model's chat template")
    p.add_argument("--system", metavar="TEXT", help="a system message for --chat")
    p.add_argument(
        "--special",
        action="store_true",
        help="read special tokens such as <|endoftext|> in the prompt as such",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument(
        "--show-probs",
        action="store_true",
        help="print each token with its probability and top alternatives",
    )
    out.add_argument("--json", action="store_true", help="one JSON object per token event")
    p.add_argument(
        "--top",
        type=_n_top_type,
        default=5,
        metavar="K",
        help="alternatives per token for --show-probs/--json (default 5)",
    )
    p.add_argument("--base-url", help="where to download GPT-2 checkpoints from")
    _add_speculative_flag(p)
    _add_sampling_flags(p)
    p.set_defaults(run=_run_generate)


def _speculative_type(text: str) -> str:
    from gpt_tui.speculation import SpeculationError, check_choice

    try:
        return check_choice(text)
    except SpeculationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_speculative_flag(p: argparse.ArgumentParser) -> None:
    from gpt_tui import speculation

    p.add_argument(
        "--speculative",
        type=_speculative_type,
        default=speculation.DEFAULT,
        metavar="off|lookup|MODEL",
        help="speculative decoding: the same text, several tokens per pass when drafts hold; "
        "lookup drafts from the prompt and output so far, MODEL is a draft model with the same "
        f"tokenizer (default {speculation.DEFAULT})",
    )


def _run_generate(args: argparse.Namespace) -> int:
    from gpt_tui.engine import generate

    params = _sampling_from_args(args)
    prompt = _read_prompt(args.prompt)
    if args.system and not args.chat:
        raise GptTuiError("--system needs --chat (the user message to answer)")
    loaded = _load_for_cli(args.model, args.base_url)
    allowed_special = "all" if args.special else "none"
    if args.chat is not None:
        from gpt_tui.chat import render_chat

        if prompt:
            raise GptTuiError("give either a PROMPT or --chat, not both")
        messages = [{"role": "system", "content": args.system}] if args.system else []
        messages.append({"role": "user", "content": args.chat})
        prompt, allowed_special = render_chat(loaded.tokenizer, messages), "all"

    n_prompt = len(loaded.tokenizer.encode(prompt, allowed_special))
    if n_prompt >= loaded.model.n_ctx:
        stderr.print(
            f"note: the prompt has {n_prompt} tokens, more than the context of "
            f"{loaded.model.n_ctx}; the window slides to keep its end",
            markup=False,
        )
    n_top = args.top if (args.show_probs or args.json) else 0
    from gpt_tui.speculation import drafter_for

    passes: list[PassStats] = []
    events = generate(
        loaded.model,
        loaded.tokenizer,
        prompt,
        params,
        n_top=n_top,
        allowed_special=allowed_special,
        drafter=drafter_for(args.speculative, loaded),
        on_pass=passes.append,
    )
    if args.json:
        return _print_json_events(events)
    return _stream_text(events, loaded, show_probs=args.show_probs, passes=passes)


def _read_prompt(prompt: str) -> str:
    if prompt != "-":
        return prompt
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GptTuiError(
            f"stdin is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "convert it first, e.g. with iconv"
        ) from None


def _load_for_cli(name: str | None, base_url: str | None) -> LoadedModel:
    from gpt_tui.models.store import default_model_name, load_model

    name = name or default_model_name()
    with _rich_download_progress() as progress:
        loaded = load_model(name, base_url=base_url, progress=progress)
    _remember_model(name)
    _say_plan(loaded.model)
    return loaded


def _say_plan(model: Any) -> None:
    """One line when loading measured this machine's kernel plan (once), or ignored a kept one."""
    from gpt_tui.engine.plan import plan_of

    plan = plan_of(model)
    if plan is None:
        return
    if plan.notice:
        stderr.print(f"warning: {plan.notice}", markup=False)
    elif plan.just_measured:
        stderr.print(
            f"[measured this machine's kernel plan in {plan.measured_s:.1f} s; "
            f"{plan.source.removeprefix('measured, ')}, reused from now on]",
            style="dim",
            markup=False,
        )


def _remember_model(name: str) -> None:
    """Make this model the default for the next run; a read-only config only costs a warning."""
    from gpt_tui.settings import load_settings, save_settings

    settings, _ = load_settings()
    if settings.model != name:
        try:
            save_settings(settings.replace(model=name))
        except GptTuiError as exc:
            stderr.print(f"warning: {exc}", markup=False)


def _stream_text(
    events: Iterable[TokenEvent],
    loaded: LoadedModel,
    show_probs: bool,
    passes: Sequence[PassStats] = (),
) -> int:
    from gpt_tui.engine import FINISH_REASONS

    collected: list[TokenEvent] = []
    start = time.perf_counter()
    for event in events:
        sys.stdout.write(event.text)
        sys.stdout.flush()
        collected.append(event)
    elapsed = time.perf_counter() - start
    sys.stdout.write("\n")
    if show_probs:
        stdout.print(_probs_table(collected, loaded))
    if collected:
        last = collected[-1]
        reason = FINISH_REASONS.get(last.finish_reason or "", "unknown")
        speculation = (
            f"{passes[-1].tokens_per_pass:.2f} tokens/pass, "
            f"{passes[-1].acceptance:.0%} of drafts held; "
            if passes
            else ""
        )
        stderr.print(
            f"[{len(collected)} tokens in {elapsed:.2f}s, {len(collected) / elapsed:.1f} tokens/s; "
            f"{speculation}model {loaded.name}; stopped: {reason}]",
            style="dim",
            markup=False,
        )
    return 0


def _probs_table(events: list[TokenEvent], loaded: LoadedModel) -> Table:

    tok = loaded.tokenizer
    table = Table(title="What the model thought", title_justify="left", show_edge=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("token")
    table.add_column("prob", justify="right")
    table.add_column("rank", justify="right")
    table.add_column("entropy\n(bits)", justify="right", style="dim")
    table.add_column("top alternatives")
    for e in events:
        alternatives = "  ".join(
            f"[bold]{_show_token(a.text)}[/] {percent(a.prob)}"
            if a.token_id == e.token_id
            else f"{_show_token(a.text)} {percent(a.prob)}"
            for a in e.top
        )
        table.add_row(
            str(e.index),
            _show_token(tok.token_text(e.token_id)),
            percent(e.prob),
            str(e.rank),
            f"{e.entropy / np.log(2):.2f}",
            alternatives,
        )
    return table


def _show_token(text: str) -> str:
    from rich.markup import escape

    return escape(visible_token(text))


def _print_json_events(events: Iterable[TokenEvent]) -> int:
    for event in events:
        sys.stdout.write(json.dumps(dataclasses.asdict(event), ensure_ascii=False) + "\n")
        sys.stdout.flush()
    return 0


# --- score ---------------------------------------------------------------------------------------

BUCKET_STYLES = {"top-1": "green", "top-10": "yellow", "top-100": "dark_orange", "beyond": "red"}


def _add_score_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score",
        help="how likely the model finds each token of a text",
        description="Score every token of TEXT (or stdin with -): probability, rank, surprisal, "
        "and the text's perplexity. Colours follow GLTR's rank buckets.",
    )
    p.add_argument("text", metavar="TEXT", help="the text to score; - reads stdin")
    p.add_argument("--model", "-m", help="model name or path (default: the last one used)")
    p.add_argument(
        "--special",
        action="store_true",
        help="read special tokens such as <|endoftext|> in the text as such",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per token, then a summary")
    p.add_argument(
        "--top", type=_n_top_type, default=3, metavar="K", help="alternatives per token (default 3)"
    )
    p.set_defaults(run=_run_score)


def _run_score(args: argparse.Namespace) -> int:
    from gpt_tui.engine import score_text

    text = _read_prompt(args.text)
    if not text.strip():
        raise GptTuiError("nothing to score: the text is empty")
    loaded = _load_for_cli(args.model, None)
    result = score_text(
        loaded.model,
        loaded.tokenizer,
        text,
        n_top=args.top,
        allowed_special="all" if args.special else "none",
    )
    summary = {
        "tokens": len(result.tokens),
        "perplexity": result.perplexity,
        "mean_surprisal_bits": result.mean_surprisal_bits,
        "buckets": {name: sum(t.bucket == name for t in result.tokens) for name in BUCKET_STYLES},
        "prepended_bos": result.prepended_bos,
    }
    if args.json:
        for token in result.tokens:
            row = {
                **dataclasses.asdict(token),
                "surprisal_bits": token.surprisal_bits,
                "bucket": token.bucket,
            }
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
        sys.stdout.write(json.dumps({"summary": summary}) + "\n")
        return 0
    table = Table(title=f"{loaded.name} reads the text", title_justify="left", show_edge=False)
    for name, justify in [
        ("#", "right"),
        ("token", "left"),
        ("prob", "right"),
        ("rank", "right"),
        ("surprisal (bits)", "right"),
        ("the model expected", "left"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for t in result.tokens:
        style = BUCKET_STYLES[t.bucket]
        expected = "  ".join(f"{_show_token(a.text)} {percent(a.prob)}" for a in t.top)
        table.add_row(
            str(t.position),
            f"[{style}]{_show_token(t.text)}[/]",
            percent(t.prob),
            str(t.rank),
            f"{t.surprisal_bits:.2f}",
            expected,
        )
    stdout.print(table)
    coloured = Text()
    for t in result.tokens:
        coloured.append(t.text, style=BUCKET_STYLES[t.bucket])
    stdout.print(coloured)
    legend = "  ".join(
        f"[{style}]{name}[/] {summary['buckets'][name]}" for name, style in BUCKET_STYLES.items()
    )
    stdout.print(
        f"{summary['tokens']} tokens; perplexity {result.perplexity:.2f}; mean surprisal "
        f"{result.mean_surprisal_bits:.2f} bits/token; rank buckets: {legend}"
    )
    return 0


# --- lens ----------------------------------------------------------------------------------------


def _add_lens_parser(sub: argparse._SubParsersAction) -> None:
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
        "--top", type=_n_top_type, default=5, metavar="K", help="predictions per layer (default 5)"
    )
    p.add_argument("--special", action="store_true", help="read special tokens in TEXT as such")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=_run_lens)


def _run_lens(args: argparse.Namespace) -> int:
    from gpt_tui.errors import InputError
    from gpt_tui.lens import report_for_text, report_json, report_tables

    text = _read_prompt(args.text)
    loaded = _load_for_cli(args.model, None)
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


# --- bench ---------------------------------------------------------------------------------------


def _add_bench_parser(sub: argparse._SubParsersAction) -> None:
    from gpt_tui.models.catalog import GPT2_HPARAMS

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
    from gpt_tui.bench import peak_rss_bytes, run_bench
    from gpt_tui.engine.plan import PLAN_ENV

    if args.replan:  # read by the model's constructor: the plan is measured as it is built
        os.environ[PLAN_ENV] = "replan"
    start = time.perf_counter()
    if args.random:
        from gpt_tui.engine import GPT2
        from gpt_tui.models.catalog import GPT2_HPARAMS
        from gpt_tui.models.random_weights import random_gpt2_params

        with stderr.status(f"building random {args.random} weights"):
            hparams = GPT2_HPARAMS[args.random]
            params = random_gpt2_params(hparams, streaming=True)
            model, name = GPT2(params, hparams), f"random {args.random}"
            tokenizer = _gpt2_tokenizer_if_available()
    else:
        loaded = _load_for_cli(args.model, None)
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

    from gpt_tui import bench_speculative as bs
    from gpt_tui.engine.speculative import DraftModel, PromptLookup
    from gpt_tui.models.catalog import GPT2_HPARAMS
    from gpt_tui.speculation import LOOKUP, check_choice

    choice = check_choice(args.speculative)
    draft = draft_name = None
    if choice != LOOKUP:
        with stderr.status(f"loading the draft model {choice}"):
            if args.random and choice in GPT2_HPARAMS:
                from gpt_tui.engine import GPT2
                from gpt_tui.models.random_weights import random_gpt2_params

                hparams = GPT2_HPARAMS[choice]
                draft = GPT2(random_gpt2_params(hparams, streaming=True, seed=1), hparams)
                draft_name = f"random {choice}"
            elif loaded is None:
                raise GptTuiError("with --random, --speculative takes lookup or a GPT-2 size")
            else:
                from gpt_tui.speculation import load_draft

                loaded_draft = load_draft(choice, loaded)
                draft, draft_name = loaded_draft.model, loaded_draft.name
    stdout.print(f"[bold]{name}[/], speculative decoding; CPU: {_cpu_name() or platform.machine()}")
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
    if draft is not None and args.random:
        ids_tok = tokenizer or bs.ids_tokenizer(model.n_vocab)
        prompt = [int(i) for i in np.random.default_rng(1).integers(0, model.n_vocab, 16)]
        short = SamplingParams(temperature=0, max_tokens=12)
        with stderr.status(f"{draft_name} drafting, plain and speculative"):
            cases.append(
                bs.run_case(
                    model,
                    ids_tok,
                    f"{draft_name} drafting, greedy",
                    prompt,
                    short,
                    lambda: DraftModel(draft),
                    rounds=1,
                )  # fmt: skip
            )
    if tokenizer is not None and not args.random:
        for case, prompt, params in bs.chat_cases(tokenizer):
            with stderr.status(f"{case}: plain and speculative, interleaved"):
                drafter = PromptLookup if draft is None else (lambda: DraftModel(draft))
                cases.append(bs.run_case(model, tokenizer, case, prompt, params, drafter))
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


def _cpu_name() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _gpt2_tokenizer_if_available():
    """GPT-2's tokenizer for random GPT-2 weights: from any cached GPT-2 model, else none."""
    from gpt_tui.models.catalog import CATALOG
    from gpt_tui.models.store import is_cached, load_tokenizer, model_path

    for spec in CATALOG:
        if spec.kind == "gpt2" and is_cached(spec.name):
            return load_tokenizer(model_path(spec.name))
    return None


def _bench_table(r: BenchResult, load_s: float, rss_loaded: int) -> Table:

    from gpt_tui.engine.plan import cpu_name

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
    return measured == planned and planned != "decode, 1 row"  # one row: the two rows' plan


# --- models, download, rm ------------------------------------------------------------------------
# The models modules are imported inside the commands: `gpt-tui --version` need not load requests.


def _add_models_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the models, their sizes and which are downloaded")
    p.set_defaults(run=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from gpt_tui.models import paths, store
    from gpt_tui.models.catalog import CATALOG

    table = Table(
        title=f"models in {paths.models_dir()}", title_justify="left", box=box.SIMPLE_HEAD
    )
    table.add_column("name", no_wrap=True)
    table.add_column("aliases", no_wrap=True)
    for column in ("params", "download", "memory"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("path", overflow="fold", min_width=12)
    styles = {"cached": "green", "bundled": "cyan", "partial": "yellow"}
    for spec in CATALOG:
        status = store.status(spec.name)
        path = {
            "cached": store.model_path(spec.name),
            "partial": store.checkpoint_path(spec.name),
        }.get(status, "")
        table.add_row(
            spec.name,
            "\n".join(spec.aliases),
            _format_count(spec.n_params),
            _format_bytes(spec.download_bytes),
            _format_bytes(spec.memory_bytes),
            Text(status, style=styles.get(status, "dim")),
            str(path),
        )
    stdout.print(table)
    # The Hugging Face cache: what other tools fetched, runnable as `--model ORG/NAME`.
    from gpt_tui.models.hf.hub_cache import hub_cache_dir

    hf = Table(
        title=f"Hugging Face models in {hub_cache_dir()} (use as --model ORG/NAME)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    hf.add_column("name", no_wrap=True)
    hf.add_column("architecture", no_wrap=True)
    for column in ("params", "size"):
        hf.add_column(column, justify="right", no_wrap=True)
    hf.add_column("status", overflow="fold", min_width=12)
    models = store.hf_models()
    for m in models:
        state = "converted" if m.converted else "cached" if m.supported else m.problem
        hf.add_row(
            m.repo_id,
            m.hf_architecture,
            _format_count(m.n_params) if m.n_params else "?",
            _format_bytes(m.size_bytes) if m.size_bytes else "?",
            Text(state, style="green" if m.supported else "yellow"),
        )
    if models:
        stdout.print(hf)
    else:
        stdout.print(f"no Hugging Face models in {hub_cache_dir()}", style="dim", markup=False)
    return 0


def _add_download_parser(sub: argparse._SubParsersAction) -> None:
    from gpt_tui.models.catalog import DEFAULT_GPT2_URL

    p = sub.add_parser("download", help="download a GPT-2 model and convert it, once")
    p.add_argument("name", metavar="NAME", help="124M, 355M, 774M or 1558M (or gpt2, gpt2-xl, ...)")
    p.add_argument(
        "--force", action="store_true", help="fetch and convert again (repairs a damaged cache)"
    )
    p.add_argument(
        "--base-url",
        metavar="URL",
        help=f"where the checkpoints are (default: $GPT_TUI_GPT2_URL or {DEFAULT_GPT2_URL})",
    )
    p.add_argument(
        "--keep-checkpoint",
        action="store_true",
        help="keep OpenAI's TensorFlow files after converting them",
    )
    p.set_defaults(run=_run_download)


def _run_download(args: argparse.Namespace) -> int:
    from gpt_tui.models import store
    from gpt_tui.models.catalog import resolve

    spec = resolve(args.name)
    if spec.bundled:
        stdout.print(f"{spec.name} is bundled with gpt-tui: nothing to download")
        return 0
    if not args.force and store.is_cached(spec.name):
        path = store.model_path(spec.name)
        stdout.print(f"{spec.name} is already downloaded: {path} (--force fetches it again)")
        return 0
    with _rich_download_progress() as progress:
        path = store.ensure_model(
            spec.name,
            base_url=args.base_url,
            progress=progress,
            force=args.force,
            keep_checkpoint=args.keep_checkpoint,
        )
    stdout.print(f"{spec.name} is ready: {path}")
    return 0


def _add_rm_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rm", help="delete a downloaded model from the cache")
    p.add_argument("name", metavar="NAME", help="the model to delete (see `gpt-tui models`)")
    p.set_defaults(run=_run_rm)


def _run_rm(args: argparse.Namespace) -> int:
    from gpt_tui.models import store
    from gpt_tui.models.catalog import resolve

    spec = resolve(args.name)
    freed = store.remove_model(spec.name)
    if freed:
        stdout.print(f"removed {spec.name} ({_format_bytes(freed)} freed)")
    else:
        stdout.print(f"{spec.name} is not downloaded: nothing to remove")
    return 0


@contextlib.contextmanager
def _rich_download_progress() -> Iterator[Callable[[DownloadProgress], None]]:
    """A progress callback for `store.ensure_model`/`load_model` that draws rich progress bars
    (bytes, rate, time left) on stderr, so stdout stays free for generated text.

    Nothing is drawn until the first event: a cached model loads without any output. Use:
    `with _rich_download_progress() as progress: loaded = load_model(name, progress=progress)`.
    """
    progress: Progress | None = None
    tasks: dict[tuple[str, str, str], TaskID] = {}
    lock = threading.Lock()  # the callback may come from a worker thread

    def callback(event: DownloadProgress) -> None:
        nonlocal progress
        with lock:
            if event.phase == "done":
                return
            if progress is None:
                progress = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(bar_width=24),
                    _AmountColumn(),
                    _RateColumn(),
                    TimeRemainingColumn(elapsed_when_finished=True),
                    console=stderr,
                )
                progress.start()
            if event.phase == "wait":
                progress.console.print(
                    f"waiting for another gpt-tui process to finish {event.model}...",
                    markup=False,
                )
                return
            key = (event.model, event.phase, event.file)
            if key not in tasks:
                # Created at `done`, not 0: bytes resumed from an earlier run are no speed.
                if event.phase == "download":
                    description = f"{event.file} ({event.file_index}/{event.file_count})"
                    unit = "bytes"
                else:
                    description, unit = f"converting {event.model}", "tensors"
                tasks[key] = progress.add_task(
                    description, total=event.total, completed=event.done, unit=unit
                )
            progress.update(tasks[key], completed=event.done, total=event.total)

    try:
        yield callback
    finally:
        if progress is not None:
            progress.stop()


class _AmountColumn(ProgressColumn):
    """Bytes for a download ("12.3/497.8 MB"), tensors for a conversion ("40/148 tensors")."""

    def __init__(self) -> None:
        super().__init__()
        self._bytes = DownloadColumn()

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "bytes")
        if unit == "bytes":
            return self._bytes.render(task)
        total = "?" if task.total is None else f"{task.total:.0f}"
        return Text(f"{task.completed:.0f}/{total} {unit}", style="progress.download")


class _RateColumn(ProgressColumn):
    """Bytes per second for a download; nothing for a conversion or before it is measured."""

    def __init__(self) -> None:
        super().__init__()
        self._speed = TransferSpeedColumn()

    def render(self, task: Task) -> Text:
        known = task.finished_speed or task.speed  # None for a file that was already there
        if task.fields.get("unit") != "bytes" or known is None:
            return Text("")
        return self._speed.render(task)


def _format_bytes(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.1f} GB"
    if n >= 1e6:
        return f"{n / 1e6:.0f} MB"
    return f"{n / 1e3:.0f} kB"


def _format_count(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


if __name__ == "__main__":
    sys.exit(main())
