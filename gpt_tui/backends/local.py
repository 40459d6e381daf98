"""The local backend: the NumPy engine in this process, with everything only it can do.

It keeps one kv cache for the model, so that continue, regenerate and branch compute only what
the cache does not hold yet; `reuse_limit` cuts it back where the prompt still needs its scores.
A run with interventions (`Request.interventions`: ablations, steering) runs every pass under
them (engine/hooked.py). The kept cache belongs to one intervention set (and, for a mean
ablation, to the text it averaged over): a run under another starts from an empty cache, so
keys and values computed under one set are never read under another.
Speculative decoding's drafter (a draft model takes seconds to load) is made on the first run
that asks for it and kept, with its own kv cache, for the next runs with the same setting.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from gpt_tui.backends.base import Capabilities, Request
from gpt_tui.backends.drafts import drafter_for
from gpt_tui.engine import KVCache, TextScore, TokenEvent, generate, generate_batch, score_text
from gpt_tui.engine.hooked import Interventions, with_interventions
from gpt_tui.engine.speculative import Drafter
from gpt_tui.errors import GptTuiError
from gpt_tui.settings import SPECULATIVE_OFF

CAPABILITIES = Capabilities(look_inside=True, speculative=True, interventions=True)


class LocalBackend:
    """A model loaded by `gpt_tui.models.loading` (GPT-2 or the LLaMA family)."""

    capabilities = CAPABILITIES

    def __init__(self, loaded: Any, *, strict: bool = False) -> None:
        """`strict`: a draft model that cannot be used fails the run (the CLI), and may be
        downloaded; otherwise it is told through the request's `on_notice` (the app)."""
        self.loaded = loaded  # gpt_tui.models.loading.LoadedModel
        self.strict = strict
        self.name: str = loaded.name
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.path = loaded.path  # where the converted model lives (None: built in memory)
        self.n_ctx: int = loaded.model.n_ctx
        self.cache: KVCache = loaded.model.new_cache()
        self._drafter: tuple[str, Drafter | None] | None = None  # (setting, its drafter)
        self._cache_for: tuple[Interventions, tuple[int, ...] | None] | None = None  # its set

    def model_for(self, interventions: Interventions | None, context: Sequence[int]) -> Any:
        """The model a run under `interventions` uses, the kept cache emptied when it was
        computed under another set (or, for a mean ablation, another text)."""
        key = None
        if interventions:
            key = (interventions, tuple(context) if interventions.needs_text else None)
        if key != self._cache_for:
            self.cache.truncate(0)
            self._cache_for = key
        return with_interventions(self.model, interventions, context)

    def generate(self, request: Request) -> Iterator[TokenEvent]:
        model = self.model_for(request.interventions, request.context)
        scored = None
        if request.reuse_limit is not None:
            self.cache.truncate(min(self.cache.length, request.reuse_limit))
            scored = request.on_prompt_scored
        events = generate(model, self.tokenizer, request.context, request.params,
                          cache=self.cache, n_top=request.n_top, on_prompt_scored=scored,
                          drafter=self.drafter(request), on_pass=request.on_pass)  # fmt: skip
        try:
            yield from events
        except Exception:
            self.cache.truncate(0)  # it may hold half a step
            raise
        finally:
            events.close()

    def generate_batch(self, requests: Sequence[Request]) -> Iterator[tuple[int, TokenEvent]]:
        first = requests[0]  # the streams share the context, the alternatives' count, the scores
        model = with_interventions(self.model, first.interventions, first.context)  # own cache
        return generate_batch(model, self.tokenizer, first.context,
                              [r.params for r in requests], n_top=first.n_top,
                              on_prompt_scored=first.on_prompt_scored)  # fmt: skip

    def score(
        self, context: list[int], n_top: int = 5, interventions: Interventions | None = None
    ) -> TextScore:
        model = with_interventions(self.model, interventions, context)
        return score_text(model, self.tokenizer, context, n_top=n_top)

    def drafter(self, request: Request) -> Drafter | None:
        """The drafter for the request's speculation setting. One is kept at a time (a draft
        model holds memory); a setting that cannot be used is told through `on_notice`, and
        the run decodes plainly."""
        choice = request.speculative
        if choice == SPECULATIVE_OFF:
            return None
        if self._drafter is None or self._drafter[0] != choice:
            try:
                drafter = drafter_for(choice, self.loaded, download=self.strict)
            except GptTuiError as exc:
                if self.strict:
                    raise
                if request.on_notice is not None:
                    request.on_notice(f"{exc}; decoding without it")
                return None
            self._drafter = (choice, drafter)
        return self._drafter[1]

    def close(self) -> None:
        self._drafter = None
        self.cache.truncate(0)
        self._cache_for = None


def engine_model(backend: object) -> object | None:
    """The NumPy engine's model behind a backend (None for a remote one): what the kernel plan,
    look inside and the benchmarks work on."""
    return backend.model if isinstance(backend, LocalBackend) else None
