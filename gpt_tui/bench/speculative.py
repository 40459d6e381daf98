"""`gpt-tui bench --speculative`: speculative decoding against plain decoding, in one run.

Two kinds of figures. On a model with real weights, whole generations of chat turns, plain and
speculative interleaved (the machine's speed drifts): tokens/s of each, tokens per pass, the
share of drafts that held, and whether the two texts were identical. On any model (random
weights too), what the speed-up rests on: the time of a verifying pass over n positions
against a plain step, and, for a draft model, the acceptance at which drafting breaks even.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpt_tui.backends.drafts import load_draft
from gpt_tui.engine import GPT2
from gpt_tui.engine.generate import generate
from gpt_tui.engine.language_model import LanguageModel
from gpt_tui.engine.plan.tuner import settle_tuner
from gpt_tui.engine.sampling import SamplingParams
from gpt_tui.engine.speculative import Drafter, DraftModel, PassStats, PromptLookup
from gpt_tui.errors import GptTuiError
from gpt_tui.models.catalog import GPT2_HPARAMS
from gpt_tui.models.random_weights import random_gpt2_params
from gpt_tui.tokenizer import Tokenizer
from gpt_tui.tokenizer.chat import render_chat

PARAGRAPH = (
    "The river wound through the valley for three hundred miles, past farms and mills and the "
    "old stone bridge at Carver's Ford, where travellers once paid a penny to cross. In spring "
    "the water rose over the meadows, and the children of the village floated paper boats down "
    "to the weir, racing them until the current carried them out of sight. By autumn the river "
    "was low and slow again, and the herons stood in the shallows all day, waiting for fish."
)
COPY_TURN = (
    "Rewrite this paragraph, changing 'river' to 'stream' and changing nothing else:\n\n"
    + PARAGRAPH
)
OPEN_TURN = "Write a short story about a lighthouse keeper who finds a message in a bottle."


@dataclass(frozen=True)
class CaseResult:
    """One prompt under one setting, decoded plainly and speculatively."""

    name: str
    tokens: int
    plain_tok_s: float  # median over the rounds, decode only (the prefill is the same for both)
    speculative_tok_s: float
    tokens_per_pass: float
    acceptance: float
    identical: bool

    @property
    def speedup(self) -> float:
        return self.speculative_tok_s / self.plain_tok_s


@dataclass(frozen=True)
class VerificationCost:
    """Seconds of a forward pass over n new positions after `context` cached ones."""

    context: int
    pass_s: dict[int, float]  # positions -> median seconds; 1 is a plain step
    ratios: dict[int, float]  # positions -> median over rounds of pass / the round's step
    draft_step_s: float | None = None  # a draft model's plain step, when one was given
    draft_ratio: float | None = None  # the draft's step / the target's, median over rounds

    def break_even(self, k: int) -> float | None:
        """The acceptance per draft at which drafting k tokens a pass equals plain decoding's
        speed (tokens per pass 1 + a + ... + a^k against the pass's and drafts' time)."""
        if self.draft_ratio is None or 1 + k not in self.ratios:
            return None
        cost = self.ratios[1 + k] + k * self.draft_ratio
        if cost > k + 1:
            return None  # not even drafts that always hold would pay
        lo, hi = 0.0, 1.0
        for _ in range(60):  # tokens per pass grows with a: bisection
            a = (lo + hi) / 2
            if sum(a**i for i in range(k + 1)) < cost:
                lo = a
            else:
                hi = a
        return hi


def measure_verification(
    model: LanguageModel,
    positions: Iterable[int] = range(1, 9),
    context: int = 64,
    rounds: int = 7,
    draft: LanguageModel | None = None,
) -> VerificationCost:
    """Time passes over n positions after `context` cached tokens (kept, as a verifying pass's
    rejected rows are, by truncating back), and a draft model's step. The sizes take turns,
    round after round, and each is compared with the step of its own round: a shared
    machine's slow spells then fall on every size alike instead of on one."""
    sizes = list(positions)
    context = min(context, model.n_ctx - max(sizes), *([draft.n_ctx - 1] if draft else []))
    ids = np.random.default_rng(0).integers(0, model.n_vocab, context + max(sizes))  # [n_ids]
    models = [model] if draft is None else [model, draft]
    caches = []
    for m in models:
        caches.append(m.new_cache())
        m.forward(ids[:context], caches[-1])
        settle_tuner(m, caches[-1])

    def timed(m: LanguageModel, cache, n: int) -> float:
        start = time.perf_counter()
        m.forward(ids[context : context + n], cache)
        seconds = time.perf_counter() - start
        cache.truncate(context)
        return seconds

    times: dict[int, list[float]] = {n: [] for n in sizes}
    ratios: dict[int, list[float]] = {n: [] for n in sizes}
    draft_ratios: list[float] = []
    draft_times: list[float] = []
    for r in range(rounds + 1):  # the first round warms caches and allocations
        step = timed(model, caches[0], 1)
        row = {n: timed(model, caches[0], n) for n in sizes}
        if draft is not None:
            draft_times.append(timed(draft, caches[1], 1))
            draft_ratios.append(draft_times[-1] / step)
        if r == 0:
            draft_times.clear()
            draft_ratios.clear()
            continue
        for n in sizes:
            times[n].append(row[n])
            ratios[n].append(row[n] / step)
    median = statistics.median
    return VerificationCost(
        context,
        {n: median(t) for n, t in times.items()},
        {n: median(q) for n, q in ratios.items()},
        median(draft_times) if draft_times else None,
        median(draft_ratios) if draft_ratios else None,
    )


def run_case(
    model: LanguageModel,
    tokenizer,
    name: str,
    prompt: str,
    params: SamplingParams,
    drafter: Callable[[], Drafter],
    rounds: int = 3,
    allowed_special: str = "all",
) -> CaseResult:
    """Generate `prompt` plainly and speculatively, `rounds` times each, alternating which
    goes first; compare the speeds' medians and the texts."""
    plain_runs, fast_runs = [], []
    plain_ids: list[int] = []
    identical = True
    stats = PassStats(0, 0, 0, 0)
    for r in range(rounds):
        for speculative in (r % 2 == 0, r % 2 == 1):
            passes: list[PassStats] = []
            ids, tok_s = _timed_generation(
                generate(
                    model,
                    tokenizer,
                    prompt,
                    params,
                    allowed_special=allowed_special,
                    drafter=drafter() if speculative else None,
                    on_pass=passes.append,
                )
            )
            if speculative:
                fast_runs.append(tok_s)
                stats = passes[-1] if passes else stats
            else:
                plain_runs.append(tok_s)
            if not plain_ids:
                plain_ids = ids
            identical = identical and ids == plain_ids
    return CaseResult(
        name=name,
        tokens=len(plain_ids),
        plain_tok_s=statistics.median(plain_runs),
        speculative_tok_s=statistics.median(fast_runs),
        tokens_per_pass=stats.tokens_per_pass,
        acceptance=stats.acceptance,
        identical=identical,
    )


def _timed_generation(events: Iterable) -> tuple[list[int], float]:
    """Token ids and decode tokens/s, timed from the first token (the prefill's) to the last."""
    ids: list[int] = []
    start = end = 0.0
    for event in events:
        end = time.perf_counter()
        if not ids:
            start = end
        ids.append(event.token_id)
    return ids, (len(ids) - 1) / (end - start) if len(ids) > 1 else 0.0


def chat_cases(tokenizer) -> list[tuple[str, str, SamplingParams]]:
    """(name, prompt, settings): a turn that copies a paragraph with an edit and an open-ended
    one, each greedy and sampled with a seed. In the chat template when the model has one."""

    def turn(text: str) -> str:
        if tokenizer.chat_template:
            return render_chat(tokenizer, [{"role": "user", "content": text}])
        return f"{text}\n\n"

    greedy = SamplingParams(temperature=0, max_tokens=160)
    sampled = SamplingParams(temperature=0.7, top_p=0.95, seed=1, max_tokens=160)
    return [
        ("copy+edit, greedy", turn(COPY_TURN), greedy),
        ("copy+edit, t 0.7", turn(COPY_TURN), sampled),
        ("open-ended, greedy", turn(OPEN_TURN), greedy),
        ("open-ended, t 0.7", turn(OPEN_TURN), sampled),
    ]


def ids_tokenizer(n_vocab: int):
    """A tokenizer whose token i reads "<i>": random weights have no real one, and the
    identity check needs only ids."""

    return Tokenizer(tokens=[f"<{i}>" for i in range(n_vocab)], merges=[], special_tokens={})


def draft_model(choice: str, target: Any | None, *, random: bool) -> tuple[Any, str]:
    """The draft model a bench setting asks for, and its name: with `random` (the target has
    random weights) a GPT-2 size gets random weights of its own; else it is loaded as the app
    loads it (`target`: the LoadedModel it drafts for)."""

    if random and choice in GPT2_HPARAMS:
        hparams = GPT2_HPARAMS[choice]
        params = random_gpt2_params(hparams, streaming=True, seed=1)
        return GPT2(params, hparams), f"random {choice}"
    if target is None:
        raise GptTuiError("with --random, --speculative takes lookup or a GPT-2 size")

    loaded = load_draft(choice, target)
    return loaded.model, loaded.name


@dataclass(frozen=True)
class BenchCase:
    """One case of `gpt-tui bench --speculative`, to run (plain and speculative, interleaved)."""

    name: str
    run: Callable[[], CaseResult]


def bench_cases(
    model: Any, tokenizer: Any, draft: Any | None, draft_name: str | None, *, random: bool
) -> list[BenchCase]:
    """The cases the bench runs: with random weights, a draft model on random token ids (text
    means nothing there); with real weights, chat turns that copy, edit or write freely."""

    cases = []
    if draft is not None and random:
        ids_tok = tokenizer or ids_tokenizer(model.n_vocab)
        prompt = [int(i) for i in np.random.default_rng(1).integers(0, model.n_vocab, 16)]
        short = SamplingParams(temperature=0, max_tokens=12)
        name = f"{draft_name} drafting, greedy"
        cases.append(BenchCase(name, lambda: run_case(
            model, ids_tok, name, prompt, short, lambda: DraftModel(draft), rounds=1
        )))  # fmt: skip
    if tokenizer is not None and not random:
        drafter = PromptLookup if draft is None else (lambda: DraftModel(draft))
        for case, prompt, params in chat_cases(tokenizer):
            cases.append(BenchCase(case, lambda c=case, p=prompt, s=params: run_case(
                model, tokenizer, c, p, s, drafter
            )))  # fmt: skip
    return cases
