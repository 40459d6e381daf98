"""The playground without a terminal: one model, one transcript, and the rules of a run.

`Playground` owns the state every front end shares: the backend (the model), the transcript and
its branch tree, the sampling settings, the run lifecycle (generate, continue, regenerate,
branch, stop), the model's loading and the session files. The app, the compare screen and the
CLI call its methods and draw what it holds; nothing here knows Textual.

Threads: everything but `execute`, `load` and a `prompt_counter`'s count runs on the front
end's thread. A run starts with a
method that returns a `Run` (the transcript already shows the empty reply), the front end runs
`execute(run, emit, ...)` where it likes (the app: a thread worker), and hands every event
`emit` gets back to `receive`, on its own thread, which applies it unless the run is no longer
the current one. A lock keeps two runs from touching the backend at once: a new run waits (at
most a token) for the one it replaced. The CLI does all of it on one thread.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from gpt_tui.backends.base import Backend, Request
from gpt_tui.backends.local import engine_model
from gpt_tui.backends.openai.summary import status_line
from gpt_tui.backends.opening import open_backend
from gpt_tui.engine import Alternative, SamplingParams, TextScore
from gpt_tui.engine.generate import window_keep
from gpt_tui.engine.hooked import Interventions
from gpt_tui.engine.interventions import Ablation
from gpt_tui.engine.plan import PLAN_ENV, plan_of
from gpt_tui.engine.plan.wisdom import wisdom_dir
from gpt_tui.engine.speculative import PassStats
from gpt_tui.errors import GptTuiError
from gpt_tui.models.availability import is_cached, spec_of
from gpt_tui.models.download import DownloadCancelled, DownloadProgress
from gpt_tui.models.names import describe, is_remote, model_setting, same_model
from gpt_tui.playground.branches import forced_event
from gpt_tui.playground.events import (
    PromptScored,
    RunEvent,
    RunFinished,
    RunNotice,
    TokensStreamed,
)
from gpt_tui.playground.intervention_list import (
    interventions_line,
    steering_from_texts,
    toggled,
    without,
)
from gpt_tui.playground.session import Session
from gpt_tui.playground.session_files import (
    bind_transcript,
    read_session,
    session_from_transcript,
    transcript_from_session,
    write_session,
)
from gpt_tui.playground.streaming import RunStats, ThreadCounter, stream_events
from gpt_tui.playground.transcript import Transcript, Turn
from gpt_tui.settings import SPECULATIVE_LOOKUP, SPECULATIVE_OFF, UserSettings
from gpt_tui.tokenizer.chat import (
    BASE_MODEL_STOP,
    encode_chat,
    encode_prompt,
    has_chat_template,
)

log = logging.getLogger(__name__)


class PlaygroundError(GptTuiError):
    """What the user asked cannot be done now; the message says why (and what to do)."""


@dataclass(frozen=True)
class Run:
    """One generation request, as `execute` sees it."""

    id: int
    backend: Backend
    request: Request


@dataclass(frozen=True)
class Branched:
    """What taking another token did: `run` goes on from it (None: nothing to generate, as
    when the branch was taken before and is shown again, or the token ends the text)."""

    position: int
    run: Run | None = None
    existing: bool = False  # that token was taken here before: its branch is shown


@dataclass(frozen=True)
class Loaded:
    """How load `load_id` of `name` ended: with `backend`, or `error` says why not
    (`cancelled`: the user stopped it)."""

    load_id: int
    name: str  # as asked for: catalog name, repo, path or URL
    backend: Backend | None = None
    error: str = ""
    cancelled: bool = False


@dataclass(frozen=True)
class PromptCount:
    """The prompt box's text in tokens, and the context the next generation starts from (in
    chat: the whole conversation with that message), of the model's `n_ctx`."""

    n_prompt: int
    n_context: int
    n_ctx: int


@dataclass(frozen=True)
class Opened:
    """A session shown by `open_session`; `load`: the model it needs is not the one loaded."""

    session: Session
    path: Path | None
    load: str | None = None


class Playground:
    """The playground's state and rules (see the module's docstring)."""

    def __init__(self, settings: UserSettings | None = None) -> None:
        settings = settings or UserSettings()
        self.sampling: SamplingParams = settings.sampling  # read by the running run at each token
        self.n_top: int = settings.n_top
        self.speculative: str = settings.speculative
        #: ablations and steering every run and score uses (engine/hooked.py); empty: none
        self.interventions: Interventions = Interventions()
        self.backend: Backend | None = None
        self.model_name: str | None = None  # as asked for: catalog name, repo, path or URL
        self.transcript = Transcript()
        self._put_aside: dict[str, Transcript] = {}  # the other mode's transcript, by mode
        self.state = "loading"  # loading, no-model, idle, generating, or why the last run ended
        self.note = ""  # one line about the last run (a prompt cut short, a window slid)
        self.run_id = 0
        self.load_id = 0
        self._load_cancels: dict[int, threading.Event] = {}  # by load id, while it runs
        self.engine_lock = threading.Lock()  # one run touches the backend at a time
        self.threads = ThreadCounter()  # worker threads still running (quitting waits)
        self.session_path: Path | None = None  # where the session was last saved or opened from
        self.pending_session: Session | None = None  # opened, waiting for its model
        self.pending_vocabulary: list[str] | None = None  # a server's pieces, from the session

    # --- the model ---------------------------------------------------------------------------

    @property
    def chat_mode(self) -> bool:
        return self.transcript.mode == "chat"

    @property
    def n_ctx(self) -> int | None:
        return self.backend.n_ctx if self.backend is not None else None

    @property
    def assistant_name(self) -> str:
        return self.backend.name if self.backend is not None else "Assistant"

    def require_model(self) -> Backend:
        if self.backend is not None:
            return self.backend
        if self.state == "loading":
            raise PlaygroundError("The model is still loading")
        raise PlaygroundError("No model loaded: pick one first")

    def begin_load(self) -> int:
        """A new load replaces any in progress; returns its id (the worker's result carries it)."""
        self.stop()
        self.cancel_load()
        self.load_id += 1
        self._load_cancels[self.load_id] = threading.Event()
        if self.backend is None:
            self.state = "loading"
        return self.load_id

    def load(
        self,
        load_id: int,
        name: str,
        progress: Callable[[DownloadProgress], object] | None = None,
        api_key: str | None = None,
    ) -> Loaded:
        """Open model `name` for load `load_id` on this thread (the app: a worker): download,
        conversion, weights, kernel plan. Never raises: a failure is `Loaded.error`. Stops at
        the next chunk or tensor once `cancel_load` is called or a newer load begins. The front
        end hands the result to `finish_load` on its own thread."""
        cancel = self._load_cancels.get(load_id) or threading.Event()

        def report(p: DownloadProgress) -> None:
            if cancel.is_set():  # conversion checks no Event: stop it from its progress report
                raise DownloadCancelled(f"getting {name} ready was cancelled")
            if progress is not None:
                progress(p)

        with self.threads.running():
            try:
                backend = open_backend(name, progress=report, cancel=cancel, api_key=api_key)
            except DownloadCancelled as exc:
                return Loaded(load_id, name, error=str(exc), cancelled=True)
            except GptTuiError as exc:
                return Loaded(load_id, name, error=str(exc))
            except Exception as exc:  # noqa: BLE001 - a bug or MemoryError: say so, keep running
                return Loaded(load_id, name, error=f"{type(exc).__name__}: {exc}")
        return Loaded(load_id, name, backend)

    def cancel_load(self) -> bool:
        """Stop the load in progress, if any (True if there was one)."""
        cancel = self._load_cancels.get(self.load_id)
        if cancel is None or cancel.is_set():
            return False
        cancel.set()
        return True

    def cancel_all_loads(self) -> None:
        """Quitting: stop every load still running, replaced ones included."""
        for cancel in self._load_cancels.values():
            cancel.set()

    def finish_load(self, loaded: Loaded) -> bool:
        """Use what `load` produced: the model (`set_backend`) or the failure (`load_failed`).
        False: a newer load replaced it (a model it opened is closed)."""
        self._load_cancels.pop(loaded.load_id, None)
        if loaded.backend is not None:
            return self.set_backend(loaded.load_id, loaded.name, loaded.backend)
        return self.load_failed(loaded.load_id)

    def set_backend(self, load_id: int, name: str, backend: Backend) -> bool:
        """Use the model a load produced (False: a newer load replaced it; it is closed)."""
        self._load_cancels.pop(load_id, None)
        if load_id != self.load_id:
            backend.close()
            return False
        if self.backend is not None:
            self.backend.close()
        self.backend, self.model_name = backend, name
        self.interventions = Interventions()  # another model's blocks and heads
        self.state = "idle"
        session, self.pending_session = self.pending_session, None
        if session is not None and same_model(name, session.model):
            # The session's token ids are this model's: show it again, bound to its tokenizer.
            self.transcript = transcript_from_session(session)
            self._bind()
        return True

    def load_failed(self, load_id: int) -> bool:
        """A load ended without a model (False: it was replaced anyway)."""
        self._load_cancels.pop(load_id, None)
        if load_id != self.load_id:
            return False
        self.pending_session = None
        if self.backend is None:
            self.state = "no-model"
        elif self.state == "loading":
            self.state = "idle"
        return True

    def chat_by_default(self, remembered: bool = True) -> bool:
        """Whether a newly loaded model starts in chat mode: it has a chat template (or a server
        applies its own), and the user did not leave chat mode with it last time
        (`remembered`); a server that only chats is always in chat mode."""
        backend = self.backend
        if backend is None:
            return False
        caps = backend.capabilities
        if not caps.completion:
            return True
        chat = has_chat_template(backend.tokenizer) or (caps.renders_chat and caps.chat)
        return chat and remembered

    @staticmethod
    def plan_expected(name: str) -> bool:
        """Whether loading `name` will likely measure this machine's kernel plan first: a local
        model on a machine that has kept no plan yet (a first start). It takes seconds, once:
        the front end says so instead of a bare "loading"."""
        mode = os.environ.get(PLAN_ENV, "").strip().lower() or "measure"
        if is_remote(name) or mode == "default":
            return False
        try:
            return mode == "replan" or not any(wisdom_dir().glob("*.json"))
        except OSError:  # an unreadable cache: a plan will be measured (and kept in memory)
            return True

    def plan_notice(self) -> tuple[str, bool] | None:
        """What to say of the loaded model's kernel plan, and whether it is a warning: it was
        measured during this load (seconds, once per model shape), or a kept one was ignored."""
        model = engine_model(self.backend) if self.backend is not None else None
        plan = plan_of(model) if model is not None else None
        if plan is None:
            return None
        if plan.notice:
            return plan.notice, True
        if plan.just_measured:
            name = self.require_model().name
            return (f"Measured how this machine runs {name} fastest ({plan.measured_s:.1f} s, "
                    "once; kept for next time)", False)  # fmt: skip
        return None

    def server_line(self) -> str:
        """What the status line says of a server (its kind, model, what it cannot do); "" for
        the local engine."""
        backend = self.backend
        if backend is None or engine_model(backend) is not None:
            return ""
        # A server backend brings the client's modules: imported only when one is loaded.

        return status_line(backend)  # type: ignore[arg-type]

    def draft_unavailable(self, choice: str) -> str | None:
        """Why speculative decoding with `choice` cannot work for the loaded model (None: it
        can, as far as is known without loading the draft): a draft model must be here already,
        smaller than the model, and share its tokenizer."""
        if choice in (SPECULATIVE_OFF, SPECULATIVE_LOOKUP):
            return None
        backend = self.require_model()
        if not backend.capabilities.speculative:
            return f"{backend.name} runs on a server, which decodes plainly"
        if same_model(self.model_name, choice):
            return f"{choice} is the model itself: a draft is a smaller model with its tokenizer"
        try:
            ref = describe(choice)
            spec = spec_of(choice)
            here = is_cached(choice)
        except GptTuiError as exc:
            return str(exc)
        n_vocab = (spec.hparams or {}).get("n_vocab") if spec is not None else None
        n_target = backend.tokenizer.n_vocab
        if n_vocab is not None and n_vocab != n_target:
            return (f"{ref.name}'s tokenizer is not {backend.name}'s ({n_vocab} tokens against "
                    f"{n_target}): a draft needs exactly the model's tokenizer")  # fmt: skip
        if ref.kind != "path" and not here:
            how = f"`gpt-tui download {ref.name}`, or " if ref.kind == "catalog" else ""
            return (
                f"the draft model {ref.name} is not downloaded yet ({how}pick it once with ctrl+o)"
            )
        return None

    def token_text(self, token_id: int) -> str | None:
        """A token's own text in the loaded model's vocabulary (None: no model, or an id of
        another model's vocabulary, as in a transcript from before a switch)."""
        if self.backend is None:
            return None
        try:
            return self.backend.tokenizer.token_text(token_id)
        except ValueError:
            return None

    def mode_unavailable(self, chat: bool) -> str | None:
        """Why the model cannot be used in that mode (None: it can)."""
        if self.backend is None:
            return None
        return self.backend.capabilities.why_not("chat" if chat else "completion")

    # --- the document ------------------------------------------------------------------------

    def set_mode(self, chat: bool) -> None:
        """Completion or chat. Each mode keeps its own transcript: this one is put aside, and
        the other mode's comes back as it was left (empty the first time)."""
        mode = "chat" if chat else "completion"
        if self.transcript.mode == mode:
            return
        self.stop()
        self._put_aside[self.transcript.mode] = self.transcript
        self.transcript = self._put_aside.pop(mode, None) or Transcript(mode=mode)
        self.note = ""
        reply = self.transcript.reply
        if self.backend is not None and self.state not in ("loading", "no-model"):
            self.state = (reply.finish if reply is not None else None) or "idle"

    def clear(self) -> None:
        self.stop()
        self.transcript.clear()
        self.note = ""
        if self.backend is not None:
            self.state = "idle"

    # --- runs --------------------------------------------------------------------------------

    def generate(self, text: str, *, special: bool = False) -> Run:
        """Generate from a prompt (completion mode) or answer a message (chat mode).
        `special`: read special tokens such as <|endoftext|> in a prompt as such."""
        backend = self.require_model()
        tokenizer = backend.tokenizer
        if self.chat_mode:
            if not text.strip():
                raise PlaygroundError("Type a message first")
            try:
                context = self.transcript.start_chat_reply(text, self.encode_chat, tokenizer)
            except Exception as exc:  # noqa: BLE001 - a template error must not end the app
                raise PlaygroundError(f"Cannot render the chat: {exc}") from exc
            return self._start(context)
        ids = encode_prompt(tokenizer, text, "all" if special else "none")
        context = self.transcript.start_completion(text, ids, tokenizer)
        return self._start(context, "" if text else "generating from an empty prompt")

    def add_system_message(self, text: str) -> None:
        """A system message to start the chat with (before its first message)."""
        if not self.chat_mode or not self.transcript.is_empty:
            raise PlaygroundError("A system message goes first, in chat mode")
        self.transcript.turns.append(Turn("system", text))

    def score(self, text: str, *, n_top: int = 5, special: bool = False) -> TextScore:
        """How likely the model finds each token of `text` (not a run: nothing is shown).

        The text is read as a completion prompt is (`encode_prompt`), so its perplexity is the
        one `prompt_score` gives after a run from it (engine.scoring.SCORING_RULE)."""
        backend = self.require_model()
        why_not = backend.capabilities.why_not("prompt_scoring")
        if why_not:
            raise PlaygroundError(f"cannot score a text with {backend.name}: {why_not}")
        self._check_interventions(backend)
        ids = encode_prompt(backend.tokenizer, text, "all" if special else "none")
        with self.engine_lock:
            if self.interventions:
                scored = backend.score(ids, n_top, interventions=self.interventions)
            else:
                scored = backend.score(ids, n_top)
        return dataclasses.replace(scored, context=tuple(ids))  # a server's score does not say

    def continue_run(self) -> Run:
        backend = self.require_model()
        reply = self.transcript.reply
        if reply is None:
            raise PlaygroundError("Nothing to continue yet: generate first")
        if self.chat_mode and reply.finish == "eos":
            raise PlaygroundError("The reply is complete: send a message to go on")
        if self.chat_mode and backend.capabilities.renders_chat:
            raise PlaygroundError(SERVER_CHAT_CANNOT_CONTINUE)
        context = self.transcript.continue_context(
            backend.tokenizer, self._text_encoder(), self.encode_chat
        )
        return self._start(context)

    def regenerate(self) -> Run:
        backend = self.require_model()
        if self.transcript.reply is None:
            raise PlaygroundError("Nothing to regenerate yet: generate first")
        context = self.transcript.regenerate_context(
            backend.tokenizer, self._text_encoder(), self.encode_chat
        )
        return self._start(context)

    def branch(self, position: int, alternative: Alternative) -> Branched:
        """Rewrite the reply from its token `position` with `alternative`, and go on from it."""
        reply = self.transcript.reply
        if reply is None or not 0 <= position < len(reply.events):
            raise PlaygroundError(NOT_THE_REPLY)
        step = reply.events[position]
        if alternative.token_id == step.token_id:
            raise PlaygroundError("That is the token already taken here")
        backend = self.require_model()
        if self.transcript.tokenizer is not backend.tokenizer:
            raise PlaygroundError(
                "This reply was written with another model's vocabulary: regenerate it to branch"
            )
        if self.chat_mode and backend.capabilities.renders_chat:
            raise PlaygroundError(SERVER_CHAT_CANNOT_CONTINUE)
        self.stop()  # a run still streaming would add its tokens to the new branch
        event = forced_event(step, alternative, alternative.text)
        ends = alternative.token_id in backend.tokenizer.eos_ids
        if ends:
            event = dataclasses.replace(event, finish_reason="eos")
        context = self.transcript.branch_context(position, event)
        if context is None:
            self.state = self.transcript.reply.finish or "idle"  # type: ignore[union-attr]
            return Branched(position, existing=True)
        if ends:
            self.state = "eos"
            return Branched(position)
        return Branched(position, self._start(context))

    def stop(self) -> bool:
        """Stop the run in progress (True if there was one): whatever it still sends is
        dropped, and the reply keeps what arrived."""
        if self.state != "generating":
            return False
        self.run_id += 1
        self.transcript.finish_reply("user")
        self.state = "user"
        return True

    def toggle_ablation(self, ablation: Ablation) -> bool:
        """Ablate `ablation` in the runs that follow, or no longer when it already is (a part
        ablated the other way, zero or mean, switches); whether it now is. PlaygroundError when
        the backend cannot (a server)."""
        interventions, on = toggled(self.interventions, ablation)
        self.set_interventions(interventions)
        return on

    def add_steering(self, add: str, sub: str, block: str, coef: str) -> None:
        """The steering vector of two texts at `block` (from 1) times `coef`, as the dialog
        gives them, in place of any before; InputError for what the model cannot take."""
        backend = self.require_model()
        self._can_intervene(backend)
        steering = steering_from_texts(backend.model, backend.tokenizer, add, sub, block, coef)
        self.set_interventions(dataclasses.replace(self.interventions, steering=steering))

    def remove_intervention(self, index: int) -> bool:
        """Entry `index` of `intervention_list.entries` no longer applies (True: done)."""
        self.set_interventions(without(self.interventions, index))
        return True

    def set_interventions(self, interventions: Interventions) -> None:
        """The set every run and score uses from now on (empty: none)."""
        if interventions:
            self._can_intervene(self.require_model())
        self.interventions = interventions

    def _can_intervene(self, backend: Backend) -> None:
        why_not = backend.capabilities.why_not("interventions")
        if why_not:
            raise PlaygroundError(why_not)

    def interventions_line(self) -> str:
        """The interventions for the status line, parts named as look inside names them
        (blocks and heads from 1: "L3 H5", "L3 MLP"); "" for none."""
        return interventions_line(self.interventions)

    def _check_interventions(self, backend: Backend) -> None:
        why_not = backend.capabilities.why_not("interventions") if self.interventions else None
        if why_not:
            raise PlaygroundError(why_not)

    def _start(self, context: list[int], note: str = "") -> Run:
        backend = self.require_model()
        self._check_interventions(backend)
        self.run_id += 1
        params: Callable[[], SamplingParams] = lambda: self.sampling  # noqa: E731
        renders = backend.capabilities.renders_chat
        if self.chat_mode and not renders and not has_chat_template(backend.tokenizer):

            def params() -> SamplingParams:
                # A base model in chat mode would write the user's next turn: stop it there.
                return self.sampling.replace(stop=(*self.sampling.stop, BASE_MODEL_STOP))

        messages = self.transcript.messages(self.transcript.turns[:-1]) if self.chat_mode else None
        # A backend that cannot speculate (a server) decodes plainly; the panel says so.
        speculative = self.speculative if backend.capabilities.speculative else SPECULATIVE_OFF
        request = Request(context, params, self.n_top, messages, self.reuse_limit(),
                          speculative, interventions=self.interventions or None)  # fmt: skip
        self.state = "generating"
        self.note = note
        return Run(self.run_id, backend, request)

    def execute(
        self,
        run: Run,
        emit: Callable[[RunEvent], object],
        cancelled: Callable[[], bool] = lambda: False,
        *,
        interval: float | None = None,
    ) -> RunFinished:
        """Run `run` on this thread, handing its events to `emit` (in batches at most every
        `interval` seconds; None: the app's rate). Returns (and emits) how it finished; an
        engine or server failure ends the run with "error", never raises. The run stops within
        a token once `cancelled()` holds or it is no longer the current run (`stop`, or a run
        or a load that replaced it): front ends need not cancel it themselves."""

        def stopped() -> bool:
            return run.id != self.run_id or cancelled()

        with self.threads.running(), self.engine_lock:
            if stopped():
                return self._emit_end(emit, RunFinished(run.id, "user", RunStats()))
            passes: list[PassStats | None] = [None]  # the latest totals, set by the engine

            def on_pass(stats: PassStats) -> None:
                passes[0] = stats

            request = dataclasses.replace(
                run.request,
                on_prompt_scored=lambda scores: emit(PromptScored(run.id, scores)),
                on_pass=on_pass,
                on_notice=lambda text: emit(RunNotice(run.id, text)),
            )
            try:
                events = run.backend.generate(request)
                post = lambda batch, stats: emit(  # noqa: E731
                    TokensStreamed(run.id, batch, stats.with_passes(passes[0]))
                )
                kw = {} if interval is None else {"interval": interval}
                finish, stats = stream_events(events, post, stopped, **kw)
            except Exception as exc:  # noqa: BLE001 - a failure ends the run, not the app
                error = str(exc) if isinstance(exc, GptTuiError) else f"{type(exc).__name__}: {exc}"
                return self._emit_end(emit, RunFinished(run.id, "error", RunStats(), error))
        return self._emit_end(emit, RunFinished(run.id, finish, stats.with_passes(passes[0])))

    @staticmethod
    def _emit_end(emit: Callable[[RunEvent], object], end: RunFinished) -> RunFinished:
        emit(end)
        return end

    def stream(self, run: Run) -> Iterator[RunEvent]:
        """`execute` with each event applied and yielded as it comes, token by token (the CLI).
        Closing the iterator (ctrl+c) stops the run within a token."""
        events: queue.SimpleQueue[RunEvent] = queue.SimpleQueue()
        stop = threading.Event()
        worker = threading.Thread(
            target=self.execute, args=(run, events.put, stop.is_set), kwargs={"interval": 0},
            name="gpt-tui-run", daemon=True,
        )  # fmt: skip
        worker.start()
        try:
            while True:
                event = events.get()
                self.receive(event)
                yield event
                if isinstance(event, RunFinished):
                    return
        finally:
            stop.set()
            worker.join()

    def receive(self, event: RunEvent) -> bool:
        """Apply an event of run `event.run_id` (False: that run is no longer current)."""
        if event.run_id != self.run_id:
            return False
        if isinstance(event, TokensStreamed):
            self.transcript.add_events(event.events)
            for token in event.events:
                if token.dropped and token.index == 0:
                    self.note = f"prompt too long: its first {token.dropped} tokens dropped"
                elif token.dropped and "slid" not in self.note:
                    self.note = " · ".join(
                        [*filter(None, [self.note]), "context full: the window slid"]
                    )
        elif isinstance(event, PromptScored):
            return self.transcript.add_prompt_scores(event.scores)
        elif isinstance(event, RunFinished):
            self.transcript.finish_reply(event.finish)
            self.state = event.finish
        return True

    # --- what the status line shows ----------------------------------------------------------

    def prompt_counter(self) -> Callable[[str], PromptCount] | None:
        """How to count the prompt box's text, to be called off this thread (None: no model).
        The conversation so far is taken now: the count is of the next message with it."""
        backend = self.backend
        if backend is None:
            return None
        tokenizer, n_ctx, threads = backend.tokenizer, backend.n_ctx, self.threads
        messages = None
        if self.chat_mode and not backend.capabilities.renders_chat:
            messages = self.transcript.messages()  # (a server renders a chat its own way)

        def count(text: str) -> PromptCount:
            with threads.running():
                n_prompt = len(tokenizer.encode(text))
                n_context = max(1, n_prompt)
                if messages is not None:
                    try:
                        chat = [*messages, {"role": "user", "content": text}]
                        n_context = len(encode_chat(tokenizer, chat))
                    except Exception as exc:  # noqa: BLE001 - generating says it; just log it
                        log.warning("cannot render the chat to count it: %s", exc)
                return PromptCount(n_prompt, n_context, n_ctx)

        return count

    def context_used(self) -> tuple[int, int] | None:
        """Tokens in the context: the reply's context and the tokens generated after it."""
        backend = self.backend
        if backend is None:
            return None
        reply = self.transcript.reply
        n = len(self.transcript.reply_prefix) + (len(reply.events) if reply is not None else 0)
        return min(max(n, 1), backend.n_ctx), backend.n_ctx

    def reuse_limit(self) -> int | None:
        """Cache length up to the first prompt token without a score (None: every one has it,
        as after continue or regenerate). The kv cache may hold that token nonetheless (a run
        stopped before its last tokens were shown, then a prompt that extends into them): it
        is computed again, to be scored. A prompt too long for the context loses its start
        (as `generate` cuts it): the cache, and the scores, begin after that."""
        n_prompt = len(self.transcript.reply_prefix)
        n_ctx = self.backend.n_ctx if self.backend is not None else n_prompt + 1
        dropped = n_prompt - window_keep(n_ctx) if n_prompt >= n_ctx else 0
        scored = self.transcript.prompt_scored_length(first=dropped + 1)
        return scored - dropped if scored < n_prompt else None

    def prompt_score(self) -> tuple[float, float] | None:
        """The prompt's perplexity and mean surprisal (bits), over every token with a
        prediction; None while some are still to be scored."""
        scores = self.transcript.prompt_scores
        if not scores or self.reuse_limit() is not None:
            return None
        summary = TextScore(tuple(scores), False)
        return summary.perplexity, summary.mean_surprisal_bits

    # --- branches ----------------------------------------------------------------------------

    def forks(self) -> list[int]:
        """The reply's positions where its text forks (sorted)."""
        reply = self.transcript.reply
        return sorted({depth for depth, _, _ in reply.tree.branch_points()} if reply else set())

    def fork_above(self, position: int | None) -> int | None:
        """The fork at or above reply token `position` (None: the last fork)."""
        above = [d for d in self.forks() if position is None or d <= position]
        return max(above, default=None)

    def next_fork(self, position: int | None, direction: int) -> int | None:
        """The fork before (-1) or after (1) reply token `position`."""
        forks = self.forks()
        if direction < 0:
            return max([d for d in forks if position is None or d < position], default=None)
        return min([d for d in forks if position is None or d > position], default=None)

    def sibling(self, position: int | None, step: int) -> int | None:
        """The node of the previous (-1) or next (1) branch at the fork above `position`
        (None: there is no other branch there)."""
        reply = self.transcript.reply
        fork = self.fork_above(position)
        if reply is None or fork is None:
            return None
        node = reply.tree.path()[fork]
        siblings = reply.tree.siblings(node)
        return siblings[(siblings.index(node) + step) % len(siblings)]

    def show_branch(self, node: int) -> int | None:
        """Show the reply's branch through `node`; returns the depth of `node` in it."""
        reply = self.transcript.reply
        if reply is None:
            return None
        self.stop()  # tokens still streaming belong to the branch being left
        depth = len(reply.tree.path(node)) - 1
        self.transcript.show_branch(node)
        if self.backend is not None and self.state != "loading":
            self.state = reply.finish or "idle"
        return depth

    # --- sessions ----------------------------------------------------------------------------

    def current_session(self, editor: str = "", requested_model: str | None = None) -> Session:
        """What the playground holds, as a session (`editor`: the prompt box's text)."""
        model = self.model_name or requested_model or ""
        session = session_from_transcript(
            self.transcript, model_setting(model) if model else "", self.sampling, self.n_top,
            editor,
        )  # fmt: skip
        vocabulary = getattr(self.transcript.tokenizer, "load_json", None)
        if vocabulary is not None:
            # A server's token ids are its pieces' places in our vocabulary of them: kept with
            # the session, so that reopening it against that server means the same tokens.
            session.extra["vocabulary"] = self.transcript.tokenizer.to_json()
        return session

    def save_session(self, path: str | Path, editor: str = "") -> tuple[Path, Path]:
        """Write the session (JSON, and Markdown beside it); SessionFileError says what failed."""
        json_path, md_path = write_session(self.current_session(editor), path)
        self.session_path = json_path
        return json_path, md_path

    def open_session(self, source: Session | str | Path, *, load: bool = True) -> Opened:
        """Show a saved session: its settings and transcript. Its token ids mean something only
        with its model: if that is not the one loaded, `Opened.load` names the model to load,
        and the transcript is bound to it when it arrives (`set_backend`). A damaged file
        raises SessionFileError, and nothing changes."""
        session, transcript, path = read_session(source)
        pieces = session.extra.get("vocabulary")
        self.pending_vocabulary = pieces if isinstance(pieces, list) else None
        self.stop()
        self.session_path = path
        self.sampling = session.sampling
        n_top = session.extra.get("n_top")
        if isinstance(n_top, int) and not isinstance(n_top, bool) and n_top > 0:
            self.n_top = n_top
        self.transcript = transcript
        self.note = ""
        self.pending_session = None
        if not session.model:
            return Opened(session, path)
        if self.backend is not None and same_model(self.model_name, session.model):
            self._bind()
            return Opened(session, path)
        self.pending_session = session
        return Opened(session, path, load=session.model if load else None)

    def _bind(self) -> None:
        backend = self.require_model()
        pieces, self.pending_vocabulary = self.pending_vocabulary, None
        if pieces is not None and hasattr(backend.tokenizer, "load_json"):
            try:
                backend.tokenizer.load_json(pieces)
            except ValueError:
                # The server's vocabulary is in use already: the session's ids would mean other
                # pieces. Left unbound, a continuation encodes the text afresh (a new turn).
                return
        bind_transcript(self.transcript, backend.tokenizer, self.encode_chat)

    # --- encoding ----------------------------------------------------------------------------

    def _encode(self, text: str) -> list[int]:
        return self.require_model().tokenizer.encode(text)

    def _text_encoder(self) -> Callable[[str], list[int]]:
        """How the text before a reply is encoded afresh (another model's ids): a completion
        document from its start, a chat's started reply as plain text."""
        if self.chat_mode:
            return self._encode
        return lambda text: encode_prompt(self.require_model().tokenizer, text)

    def encode_chat(self, messages: list[dict[str, str]]) -> list[int]:
        """A chat's token context (none for a server, which renders the chat itself)."""
        backend = self.require_model()
        if backend.capabilities.renders_chat:
            return []  # the server renders the messages with the model's own template
        return encode_chat(backend.tokenizer, messages)


NOT_THE_REPLY = "Only the reply's tokens branch (in a chat, the latest reply's)"
SERVER_CHAT_CANNOT_CONTINUE = (
    "A server's chat endpoint starts every reply afresh: it cannot continue or branch one. "
    "Regenerate it, send a message, or use completion mode (F3)"
)


__all__ = ["Branched", "Loaded", "Opened", "Playground", "PlaygroundError", "PromptCount", "Run"]
