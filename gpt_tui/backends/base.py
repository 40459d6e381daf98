"""The interface between the playground core and a model, local or remote.

A backend turns requests into streams of `TokenEvent`s, the engine's own event type, so that the
transcript, the inspector, colouring, branching and saved sessions work the same on any backend.
Token ids in a request are ids of the backend's own `tokenizer` (for a remote model that is the
backend's vocabulary of the pieces it has seen: see `backends/openai`). What a backend cannot do
is said by `capabilities`, one line per missing feature, never by a failure at the last moment.

Threading: the core calls `generate`, `generate_batch` and `score` from one worker thread at a
time; closing the iterator they return stops the work at once (the engine at the next token, a
remote stream by closing its connection) and leaves the backend usable for the next request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gpt_tui.engine import SamplingParams, TextScore, TokenEvent, TokenScore
from gpt_tui.engine.hooked import Interventions
from gpt_tui.engine.speculative import PassStats

#: SamplingParams fields, as the capabilities name them: today's, then issue 24's samplers and
#: the settings that are lists (biases, bans, DRY's breakers, the stages' order).
SAMPLING_SETTINGS = (
    "temperature", "top_k", "top_p", "min_p", "repetition_penalty", "presence_penalty",
    "frequency_penalty", "seed", "max_tokens", "stop",
    "typical_p", "top_n_sigma", "xtc_probability", "xtc_threshold", "dry_multiplier", "dry_base",
    "dry_allowed_length", "dry_penalty_last_n", "dry_sequence_breakers", "dynatemp_range",
    "dynatemp_exponent",
    "mirostat_tau", "mirostat_eta", "logit_bias", "banned_tokens", "banned_strings",
    "sampler_order",
)  # fmt: skip


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do. A missing feature has a reason in `unavailable`, one line that the
    app and the CLI show as it is ("look inside needs the local engine: ...")."""

    completion: bool = True  # continue raw text
    chat: bool = True  # the model's own chat template (locally) or a chat endpoint (remote)
    alternatives: int = 20  # how many alternatives per token it reports (0: none)
    prompt_scoring: bool = True  # probabilities of the prompt's own tokens
    look_inside: bool = False  # engine.trace on the kv cache
    speculative: bool = False  # engine.speculative
    interventions: bool = False  # engine.hooked: ablation and steering on the forward pass
    batch: bool = True  # several streams of one context at once (compare)
    #: the backend applies the model's chat template itself (a server's chat endpoint): it gets
    #: `Request.messages`, and a chat's token context means positions only
    renders_chat: bool = False
    sampled_prob: bool = True  # each token's probability under the sampling settings is known
    entropy: bool = True  # entropies are exact (not a bound from the alternatives listed)
    #: a token's rank is known beyond the alternatives listed (a server's is only "> n" there)
    exact_ranks: bool = True
    #: the sampling settings it honours (names from SAMPLING_SETTINGS)
    sampling: frozenset[str] = frozenset(SAMPLING_SETTINGS)
    #: feature or setting name -> why it is not available here
    unavailable: dict[str, str] = field(default_factory=dict)

    def why_not(self, feature: str) -> str | None:
        """The reason `feature` (a field above or a sampling setting) is not available, or None."""
        if feature in SAMPLING_SETTINGS:
            ok = feature in self.sampling
        else:
            ok = bool(getattr(self, feature, False))
        if ok:
            return None
        return self.unavailable.get(feature, f"{feature.replace('_', ' ')} is not available here")


@dataclass(frozen=True)
class Request:
    """One generation: continue `context` (token ids of the backend's tokenizer).

    `messages`: in chat mode, the conversation the context renders (a remote chat endpoint sends
    these; the local engine uses `context`). `params` is called at every step, so a slider moved
    during a run takes effect at the next token. `reuse_limit`: how much of a kept kv cache may be
    reused; past it the prompt has no scores yet and is scored through `on_prompt_scored`
    (None: every prompt token has its score, nothing to score).
    """

    context: list[int]
    params: Callable[[], SamplingParams]
    n_top: int = 10
    messages: list[dict[str, str]] | None = None
    reuse_limit: int | None = None
    speculative: str = "off"  # settings.py's speculative setting: off, lookup or a model
    on_prompt_scored: Callable[[list[TokenScore]], None] | None = None
    on_pass: Callable[[PassStats], None] | None = None  # speculation's running totals
    #: a setting that cannot be honoured and is used without: told once per request
    on_notice: Callable[[str], None] | None = None
    #: ablations and steering on every pass of the run (capabilities.interventions); None: none
    interventions: Interventions | None = None


class Backend(Protocol):
    """A model the playground can drive."""

    name: str  # what the status line and saved sessions call it
    n_ctx: int  # context window, in tokens
    tokenizer: Any  # encode(text, allowed_special) / decode / token_text / eos_ids / bos_id
    capabilities: Capabilities

    def generate(self, request: Request) -> Iterator[TokenEvent]:
        """The reply's tokens, each with its probability, rank and alternatives; the last event
        carries `finish_reason`. Raises BackendError (gpt_tui.errors) with a one-line message."""
        ...

    def generate_batch(self, requests: Sequence[Request]) -> Iterator[tuple[int, TokenEvent]]:
        """Several streams at once (the compare screen): (stream index, event) pairs."""
        ...

    def score(
        self, context: list[int], n_top: int = 5, interventions: Interventions | None = None
    ) -> TextScore:
        """The probability of each token of `context` after the ones before it, with `n_top`
        alternatives. The first has nothing before it and no score (`prepended_bos` says whether
        it is the beginning-of-text token the tokenizer puts before a text: engine.scoring's
        SCORING_RULE). Raises BackendError when the backend cannot
        (capabilities.prompt_scoring)."""
        ...

    def close(self) -> None:
        """Release what the backend holds (memory, connections)."""
        ...
