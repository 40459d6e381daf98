"""The app's generation: generate, continue, regenerate, stop, and the worker that runs them.

A mixin of `GptTuiApp` (kept apart so app.py stays a map of the app). One exclusive thread
worker runs the engine and posts batches of tokens (`stream_events`); every run has an id, so
the late batches of a replaced or stopped run are dropped. A lock keeps two runs from touching
the kv cache at once: a new run waits (at most a token) for the one it replaced.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textual import work
from textual.worker import get_current_worker

from gpt_tui.engine import KVCache, SamplingParams, TextScore, generate
from gpt_tui.engine.generate import window_keep
from gpt_tui.engine.speculative import Drafter, PassStats
from gpt_tui.errors import GptTuiError
from gpt_tui.speculation import OFF, drafter_for
from gpt_tui.tui import messages as msg
from gpt_tui.tui.chat_format import BASE_MODEL_STOP, encode_chat, has_chat_template
from gpt_tui.tui.generation import RunStats, stream_events

STATUS_INTERVAL = 0.25  # seconds between updates of the speed shown while generating


@dataclass(frozen=True)
class Run:
    """One generation request, as the worker sees it."""

    id: int
    model: Any
    tokenizer: Any
    cache: KVCache
    context: list[int]
    n_top: int
    params: Callable[[], SamplingParams]
    # How much of the kv cache may be reused: past it the prompt has no scores yet (so it is
    # scored); None: all are known, nothing to score (scoring costs the prefill one token).
    reuse_limit: int | None = None
    speculative: str = OFF  # the setting (gpt_tui/speculation.py): off, lookup or a model


class Generating:
    """Generation for `GptTuiApp`."""

    def _model_ready(self) -> bool:
        if self.loaded is not None:
            return True
        if self.state == "loading":
            self.notify("The model is still loading", severity="warning")
        else:
            self.notify("No model loaded: ctrl+o picks one", severity="warning")
        return False

    def _encode(self, text: str) -> list[int]:
        return self.loaded.tokenizer.encode(text)

    def _encode_chat(self, messages: list[dict[str, str]]) -> list[int]:
        return encode_chat(self.loaded.tokenizer, messages)

    def action_generate(self) -> None:
        if not self._model_ready():
            return
        text = self.prompt_editor.text
        tokenizer = self.loaded.tokenizer
        note = ""
        if self.chat_mode:
            if not text.strip():
                self.notify("Type a message first", severity="warning")
                return
            try:
                context = self.transcript.start_chat_reply(text, self._encode_chat, tokenizer)
            except Exception as exc:  # noqa: BLE001 - a template error must not end the app
                self.notify(f"Cannot render the chat: {exc}", severity="error")
                return
            self.prompt_editor.text_area.clear()
        else:
            context = self.transcript.start_completion(text, self._encode(text), tokenizer)
            if not context:
                note = "empty prompt: generating from <|endoftext|>"
        self.output.show_transcript(self.transcript, self._assistant_name())
        self._start_run(context, note)

    def action_continue_generation(self) -> None:
        if not self._model_ready():
            return
        reply = self.transcript.reply
        if reply is None:
            self.notify("Nothing to continue yet: generate first", severity="warning")
            return
        if self.chat_mode and reply.finish == "eos":
            self.notify("The reply is complete: send a message to go on", severity="warning")
            return
        n_turns = len(self.transcript.turns)
        context = self.transcript.continue_context(
            self.loaded.tokenizer, self._encode, self._encode_chat
        )
        if len(self.transcript.turns) != n_turns:  # a new turn after a model switch
            self.output.show_transcript(self.transcript, self._assistant_name())
        self._start_run(context)

    def action_regenerate(self) -> None:
        if not self._model_ready():
            return
        if self.transcript.reply is None:
            self.notify("Nothing to regenerate yet: generate first", severity="warning")
            return
        context = self.transcript.regenerate_context(
            self.loaded.tokenizer, self._encode, self._encode_chat
        )
        self.output.show_transcript(self.transcript, self._assistant_name())
        self._start_run(context)

    def _start_run(self, context: list[int], note: str = "") -> None:
        self._run_id += 1
        if self.cache is None:
            self.cache = self.loaded.model.new_cache()
        params: Callable[[], SamplingParams] = lambda: self.sampling  # noqa: E731
        if self.chat_mode and not has_chat_template(self.loaded.tokenizer):

            def params() -> SamplingParams:
                # A base model in chat mode would write the user's next turn: stop it there.
                return self.sampling.replace(stop=(*self.sampling.stop, BASE_MODEL_STOP))

        run = Run(self._run_id, self.loaded.model, self.loaded.tokenizer, self.cache,
                  context, self.n_top, params, self._reuse_limit(),
                  self.speculative)  # fmt: skip
        self._set_state("generating")
        self.status.stats = None
        self._show_prompt_score()  # None until this run's prompt is scored, if it must be
        self.status.note = note
        self._generation_worker(run)

    @work(thread=True, exclusive=True, group="generation", exit_on_error=False)
    def _generation_worker(self, run: Run) -> None:
        worker = get_current_worker()
        with self._threads.running(), self._engine_lock:
            if worker.is_cancelled:
                self.post_message(msg.GenerationDone(run.id, "user", RunStats()))
                return
            try:
                scored = None
                if run.reuse_limit is not None:
                    run.cache.truncate(min(run.cache.length, run.reuse_limit))
                    scored = lambda scores: self.post_message(  # noqa: E731
                        msg.PromptScored(run.id, scores)
                    )
                drafter = self._drafter(run)
                passes: list[PassStats | None] = [None]  # the latest totals, set by the engine

                def on_pass(stats: PassStats) -> None:
                    passes[0] = stats

                events = generate(run.model, run.tokenizer, run.context, run.params,
                                  cache=run.cache, n_top=run.n_top, on_prompt_scored=scored,
                                  drafter=drafter, on_pass=on_pass)  # fmt: skip
                post = lambda batch, stats: self.post_message(  # noqa: E731
                    msg.TokensStreamed(run.id, batch, stats.with_passes(passes[0]))
                )
                finish, stats = stream_events(events, post, lambda: worker.is_cancelled)
                stats = stats.with_passes(passes[0])
            except Exception as exc:  # noqa: BLE001 - an engine failure ends the run, not the app
                run.cache.truncate(0)  # it may hold half a step
                error = f"{type(exc).__name__}: {exc}"
                self.post_message(msg.GenerationDone(run.id, "error", RunStats(), error))
                return
        self.post_message(msg.GenerationDone(run.id, finish, stats))

    def _drafter(self, run: Run) -> Drafter | None:
        """The run's drafter, made in the worker (a draft model takes seconds to load) and
        kept for the next runs with this model and setting (its kv cache with it). A setting
        that cannot be used is said once per run, and the run decodes plainly."""
        key = (run.speculative, id(run.model))
        if key not in self._drafters:
            try:
                drafter = drafter_for(run.speculative, self.loaded, download=False)
            except GptTuiError as exc:
                self.call_from_thread(
                    self.notify, f"{exc}; decoding without it", title="Speculative decoding",
                    severity="warning", timeout=8,
                )  # fmt: skip
                return None
            self._drafters = {key: drafter}  # one at a time: a draft model holds memory
        return self._drafters[key]

    def on_tokens_streamed(self, message: msg.TokensStreamed) -> None:
        if message.run_id != self._run_id or not self.is_running:
            return
        self.transcript.add_events(message.events)
        self.output.add_tokens(message.events)
        now = time.monotonic()
        if now - self._status_shown >= STATUS_INTERVAL:  # a speed changing at every batch
            self._status_shown = now  # is unreadable, and each change is a repaint
            self.status.stats = message.stats
            self._show_context_used()
        for event in message.events:
            if event.dropped and event.index == 0:
                self.status.note = f"prompt too long: its first {event.dropped} tokens dropped"
            elif event.dropped and "slid" not in self.status.note:
                notes = [self.status.note] if self.status.note else []
                self.status.note = " · ".join([*notes, "context full: the window slid"])

    def _show_context_used(self) -> None:
        """Tokens in the context: what the cache holds, and the token sampled last."""
        if self.cache is not None and self.loaded is not None:
            n_ctx = self.loaded.model.n_ctx
            self.status.context = (min(self.cache.length + 1, n_ctx), n_ctx)

    def _reuse_limit(self) -> int | None:
        """Cache length up to the first prompt token without a score (None: every one has it,
        as after continue or regenerate). The kv cache may hold that token nonetheless (a run
        stopped before its last tokens were shown, then a prompt that extends into them): it
        is computed again, to be scored. A prompt too long for the context loses its start
        (as `generate` cuts it): the cache, and the scores, begin after that."""
        n_prompt = len(self.transcript.reply_prefix)
        n_ctx = self.loaded.model.n_ctx if self.loaded is not None else n_prompt + 1
        dropped = n_prompt - window_keep(n_ctx) if n_prompt >= n_ctx else 0
        scored = self.transcript.prompt_scored_length(first=dropped + 1)
        return scored - dropped if scored < n_prompt else None

    def on_prompt_scored(self, message: msg.PromptScored) -> None:
        if message.run_id != self._run_id or not self.is_running:
            return
        if self.transcript.add_prompt_scores(message.scores):
            # Drawn again with the prompt as scored tokens; nothing is generated yet to lose.
            self.output.show_transcript(self.transcript, self._assistant_name())
        self._show_prompt_score()

    def _show_prompt_score(self) -> None:
        """The prompt's perplexity and mean surprisal, over every token with a prediction
        (nothing while some are still to be scored)."""
        scores = self.transcript.prompt_scores
        complete = self._reuse_limit() is None
        summary = TextScore(tuple(scores), False) if scores and complete else None
        self.status.prompt_score = (
            (summary.perplexity, summary.mean_surprisal_bits) if summary is not None else None
        )

    def on_generation_done(self, message: msg.GenerationDone) -> None:
        if message.run_id != self._run_id or not self.is_running:
            return
        self.transcript.finish_reply(message.finish)
        self._set_state(message.finish)
        if message.stats.n_tokens:
            self.status.stats = message.stats
            self._show_context_used()
        if message.error:
            self.notify(message.error, severity="error", title="Generation failed", timeout=12)
        self._schedule_count()

    def action_stop(self) -> None:
        if self.state == "generating":
            self.workers.cancel_group(self, "generation")
            # The worker confirms within a token; drop whatever it still sends.
            self._run_id += 1
            self.transcript.finish_reply("user")
            self._set_state("user")
        elif self._load_cancel is not None and self._downloading:
            self.action_cancel_download()
