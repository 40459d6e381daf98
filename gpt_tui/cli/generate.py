"""`gpt-tui generate` and `gpt-tui score`: the playground core, headless."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

import numpy as np
from rich.table import Table
from rich.text import Text

from gpt_tui.backends.base import Request
from gpt_tui.backends.local import engine_model
from gpt_tui.cli.console import (
    open_for_cli,
    read_prompt,
    show_alternative,
    show_piece,
    show_token,
    stderr,
    stdout,
    token_pieces,
)
from gpt_tui.cli.flags import (
    INTERVENTIONS_REMOTE,
    add_api_key_flag,
    add_intervention_flags,
    add_sampling_flags,
    add_speculative_flag,
    interventions_for,
    n_top_type,
    sampling_for,
    wants_interventions,
)
from gpt_tui.display import percent
from gpt_tui.engine import FINISH_REASONS
from gpt_tui.engine.events import TokenEvent
from gpt_tui.engine.sampling import SamplingParams
from gpt_tui.engine.scoring import SCORING_RULE
from gpt_tui.errors import InputError
from gpt_tui.models.names import is_remote
from gpt_tui.settings import SPECULATIVE_DEFAULT, SPECULATIVE_OFF, UserSettings

BUCKET_STYLES = {"top-1": "green", "top-10": "yellow", "top-100": "dark_orange", "beyond": "red"}


def add_generate_parser(sub: argparse._SubParsersAction) -> None:
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
        type=n_top_type,
        default=5,
        metavar="K",
        help="alternatives per token for --show-probs/--json (default 5)",
    )
    p.add_argument("--base-url", help="where to download GPT-2 checkpoints from")
    add_api_key_flag(p)
    add_speculative_flag(p)
    add_sampling_flags(p)
    add_intervention_flags(p)
    p.set_defaults(run=_run_generate)


def _run_generate(args: argparse.Namespace) -> int:
    from gpt_tui.playground.events import RunFinished, RunNotice, TokensStreamed

    prompt = read_prompt(args.prompt)
    if args.system and not args.chat:
        raise InputError("--system needs --chat (the user message to answer)")
    if args.chat is not None and prompt:
        raise InputError("give either a PROMPT or --chat, not both")
    if args.chat is not None and not args.chat.strip():
        raise InputError("--chat needs a message (it is empty)")
    n_top = args.top if (args.show_probs or args.json) else 0
    _local_only(args)
    core = _playground(args.model, args.base_url, args, n_top, args.speculative, args.api_key)
    _intervene(core, args)
    if args.chat is not None:
        core.set_mode(chat=True)
        if args.system:
            core.add_system_message(args.system)
        run = core.generate(args.chat)
    else:
        run = core.generate(prompt, special=args.special)
    n_ctx = run.backend.n_ctx
    if len(run.request.context) >= n_ctx:
        stderr.print(
            f"note: the prompt has {len(run.request.context)} tokens, more than the context of "
            f"{n_ctx}; the window slides to keep its end",
            markup=False,
        )
    collected: list[TokenEvent] = []
    finished: RunFinished | None = None
    for event in core.stream(run):
        if isinstance(event, TokensStreamed):
            for token in event.events:
                if args.json:
                    sys.stdout.write(json.dumps(dataclasses.asdict(token), ensure_ascii=False))
                    sys.stdout.write("\n")
                else:
                    sys.stdout.write(token.text)
            sys.stdout.flush()
            collected += event.events
        elif isinstance(event, RunNotice):
            stderr.print(f"note: {event.text}", markup=False)
        elif isinstance(event, RunFinished):
            finished = event
    if args.json:
        return _run_failed(finished)
    sys.stdout.write("\n")
    if args.show_probs:
        stdout.print(_probs_table(collected, run.backend.tokenizer))
    if collected and finished is not None and finished.finish != "error":
        n_read = len(run.request.context) - collected[0].dropped  # what the window kept
        _say_speed(collected, n_read, finished, run.backend.name)
    return _run_failed(finished)


def _playground(
    name: str | None,
    base_url: str | None,
    sampling_args: argparse.Namespace | None = None,
    n_top: int = 5,
    speculative: str | None = None,
    api_key: str | None = None,
) -> Any:
    """The playground core on the model asked for (default: the last one used), with the
    sampling settings `sampling_args` give (its flags and preset). `speculative` None: the
    default, where the backend can speculate."""
    from gpt_tui.playground.core import Playground

    name, backend = open_for_cli(name, base_url, api_key)
    params = None if sampling_args is None else backend_sampling(sampling_args, backend)
    if speculative not in (None, SPECULATIVE_OFF):
        why_not = backend.capabilities.why_not("speculative")
        if why_not:
            raise InputError(f"--speculative {speculative}: {why_not}")
        # Made now, not at the first token: a draft that cannot draft for this model is a bad
        # flag (SpeculationError, exit code 2), said before anything is generated. The backend
        # keeps the drafter for the run.
        backend.drafter(Request([], SamplingParams, speculative=speculative))
    speculative = SPECULATIVE_DEFAULT if speculative is None else speculative
    settings = UserSettings(n_top=max(n_top, 1), speculative=speculative)
    core = Playground(settings if params is None else settings.replace(sampling=params))
    core.n_top = n_top  # 0: no alternatives wanted (nothing printed them)
    core.set_backend(core.begin_load(), name, backend)
    return core


def _local_only(args: argparse.Namespace) -> None:
    """Interventions asked of a server: said before connecting to it."""
    if wants_interventions(args) and args.model and is_remote(args.model):
        raise InputError(INTERVENTIONS_REMOTE)


def _intervene(core: Any, args: argparse.Namespace) -> None:
    """The interventions the flags ask for, on every run of `core` (the local engine only)."""
    if not wants_interventions(args):
        return
    model = engine_model(core.backend)
    if model is None or core.backend.capabilities.why_not("interventions"):
        raise InputError(INTERVENTIONS_REMOTE)
    special = "all" if args.special else "none"
    core.interventions = interventions_for(args, model, core.backend.tokenizer, special)
    stderr.print(f"[interventions: {core.interventions.describe()}]", style="dim", markup=False)


def backend_sampling(args: argparse.Namespace, backend: Any) -> SamplingParams:
    """The run's sampling settings on this backend (its tokens, its recommended preset)."""
    model = engine_model(backend)
    remote = model is None
    return sampling_for(
        args,
        backend.tokenizer,
        sys.maxsize if remote else model.n_vocab,  # a server's vocabulary is not known here
        getattr(backend, "path", None),
        name=backend.name,
        remote=remote,
    )


def _run_failed(finished: Any) -> int:
    """The exit code of a run: 1 with its error said, when it failed."""
    if finished is not None and finished.finish == "error":
        stderr.print(f"error: {finished.error}", markup=False)
        return 1
    return 0


def _say_speed(collected: list[TokenEvent], n_read: int, finished: Any, model: str) -> None:
    """The prompt's rate (prefill: `n_read` tokens until the first token came) and the
    generation's (the tokens after the first) apart, as the app's status line shows them: a
    long prompt's reading would otherwise drown the generation's speed."""

    reason = FINISH_REASONS.get(collected[-1].finish_reason or finished.finish, "unknown")
    stats = finished.stats
    ttft = stats.ttft or 0.0
    prompt = f"prompt: {n_read:,} tokens in {ttft:.2f} s"
    if ttft > 0:
        prompt += f" ({n_read / ttft:,.0f} tokens/s)"
    n = len(collected)
    generated = f"generated: {n} token{'s' if n != 1 else ''}"
    if stats.decode_rate is not None:
        generated += f" at {stats.decode_rate:.1f} tokens/s"
    speculation = (
        f"{stats.tokens_per_pass:.2f} tokens/pass, {stats.drafts_held:.0%} of drafts held; "
        if stats.tokens_per_pass is not None
        else ""
    )
    n_rewinds = sum(e.rewinds for e in collected)
    rewinds = (
        f"{n_rewinds} rewind{'s' if n_rewinds != 1 else ''} for banned strings; "
        if n_rewinds
        else ""
    )
    stderr.print(
        f"[{prompt}; {generated}; {speculation}{rewinds}model {model}; stopped: {reason}]",
        style="dim",
        markup=False,
    )


def _probs_table(events: list[TokenEvent], tok: Any) -> Table:
    table = Table(title="What the model thought", title_justify="left", show_edge=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("token")
    table.add_column("prob", justify="right")
    table.add_column("rank", justify="right")
    table.add_column("entropy\n(bits)", justify="right", style="dim")
    table.add_column("top alternatives")
    for e in events:
        alternatives = "  ".join(
            f"[bold]{show_token(a.text)}[/] {percent(a.prob)}"
            if a.token_id == e.token_id
            else f"{show_token(a.text)} {percent(a.prob)}"
            for a in e.top
        )
        table.add_row(
            str(e.index),
            show_token(tok.token_text(e.token_id)),
            percent(e.prob),
            str(e.rank),
            f"{e.entropy / np.log(2):.2f}",
            alternatives,
        )
    return table


def add_score_parser(sub: argparse._SubParsersAction) -> None:

    p = sub.add_parser(
        "score",
        help="how likely the model finds each token of a text",
        description="Score every token of TEXT (or stdin with -): probability, rank, surprisal, "
        f"and the text's perplexity. As in the app's prompt scores, {SCORING_RULE}; the "
        "perplexity is over the scored tokens. A character split over tokens is shown on the "
        "token that completes it. Colours follow GLTR's rank buckets.",
    )
    p.add_argument("text", metavar="TEXT", help="the text to score; - reads stdin")
    p.add_argument("--model", "-m", help="model name or path (default: the last one used)")
    p.add_argument(
        "--special",
        action="store_true",
        help="read special tokens such as <|endoftext|> in the text as such",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per token (the first without figures when nothing precedes it; "
        '"text" its share of the text), then a summary',
    )
    p.add_argument(
        "--top", type=n_top_type, default=3, metavar="K", help="alternatives per token (default 3)"
    )
    add_api_key_flag(p)
    add_intervention_flags(p)
    p.set_defaults(run=_run_score)


def _run_score(args: argparse.Namespace) -> int:
    text = read_prompt(args.text)
    if not text.strip():
        raise InputError("nothing to score: the text is empty")
    _local_only(args)
    core = _playground(args.model, None, api_key=args.api_key)
    _intervene(core, args)
    why_not = core.backend.capabilities.why_not("prompt_scoring")
    if why_not:  # the model named cannot do this command: like a bad argument
        raise InputError(f"cannot score a text with {core.backend.name}: {why_not}")
    result = core.score(text, n_top=args.top, special=args.special)
    name, tokenizer = core.backend.name, core.backend.tokenizer
    ids = result.context
    pieces = token_pieces(tokenizer, ids)
    # The text's own tokens: not the beginning-of-text token its tokenizer put before it.
    first = 1 if result.prepended_bos else 0
    scores = {t.position: t for t in result.tokens}
    summary = {
        "tokens": len(ids) - first,
        "scored": len(result.tokens),
        "perplexity": result.perplexity,
        "mean_surprisal_bits": result.mean_surprisal_bits,
        "buckets": {b: sum(t.bucket == b for t in result.tokens) for b in BUCKET_STYLES},
        "prepended_bos": result.prepended_bos,
    }
    if args.json:
        for position in range(first, len(ids)):
            t = scores.get(position)
            row: dict[str, Any] = {"position": position, "token_id": ids[position]}
            if t is not None:
                row = {**dataclasses.asdict(t), "surprisal_bits": t.surprisal_bits,
                       "bucket": t.bucket}  # fmt: skip
            row.update(text=pieces[position], scored=t is not None)
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
        sys.stdout.write(json.dumps({"summary": summary}) + "\n")
        return 0
    table = Table(title=f"{name} reads the text", title_justify="left", show_edge=False)
    for column, justify in [
        ("#", "right"),
        ("token", "left"),
        ("prob", "right"),
        ("rank", "right"),
        ("surprisal (bits)", "right"),
        ("the model expected", "left"),
    ]:
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    coloured = Text()
    for position, token_id in enumerate(ids):
        shown = show_piece(pieces[position], token_id, tokenizer)
        t = scores.get(position)
        if t is None:
            why = "put before the text" if position < first else "nothing precedes it"
            table.add_row(str(position), shown, "", "", "", f"[dim]not scored: {why}[/]")
        else:
            expected = "  ".join(
                f"{show_alternative(a.token_id, a.text, tokenizer)} {percent(a.prob)}"
                for a in t.top
            )
            style = BUCKET_STYLES[t.bucket]
            table.add_row(str(position), f"[{style}]{shown}[/]", percent(t.prob), str(t.rank),
                          f"{t.surprisal_bits:.2f}", expected)  # fmt: skip
        if position >= first:
            coloured.append(pieces[position], style=BUCKET_STYLES[t.bucket] if t else "")
    stdout.print(table)
    stdout.print(coloured)
    legend = "  ".join(
        f"[{style}]{bucket}[/] {summary['buckets'][bucket]}"
        for bucket, style in BUCKET_STYLES.items()
    )
    stdout.print(
        f"{summary['tokens']} tokens, {summary['scored']} scored; perplexity "
        f"{result.perplexity:.2f}; mean surprisal {result.mean_surprisal_bits:.2f} bits/token; "
        f"rank buckets: {legend}"
    )
    if first:
        bos = show_token(tokenizer.token_text(ids[0]))
        rule = f"every token is scored, after the {bos} {name}'s tokenizer puts before a text"
    else:
        rule = (
            f"the first token has no score: nothing precedes it ({name}'s tokenizer puts no "
            "beginning-of-text token before a text)"
        )
    stdout.print(f"[dim]{rule}[/]")
    return 0
