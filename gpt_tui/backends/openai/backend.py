"""`OpenAIBackend`: a model behind an OpenAI-compatible server, as a `backends.base.Backend`.

Generation streams /v1/completions (or /v1/chat/completions for a chat turn) with logprobs and
turns each streamed token into the engine's `TokenEvent`. What differs from the local engine:
- the settings are read once per request (a server takes them with the request), not per token;
- stop strings are applied here, on the streamed text, with the engine's `StopStringHold`, so
  that they mean the same on every server; the stream is closed as soon as one completes;
- `sampled_prob` is 1 for greedy decoding and NaN otherwise: no server reports the probability
  under its sampling distribution (see `Capabilities.unavailable["sampled_prob"]`);
- `rank` and `entropy` come from the alternatives the server lists (see `logprobs`);
- a stream cut short raises `ConnectionLost` after the events that arrived; they stay valid.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from gpt_tui.backends.base import SAMPLING_SETTINGS, Capabilities, Request
from gpt_tui.backends.openai.client import ServerClient, Timeouts
from gpt_tui.backends.openai.logprobs import (
    PieceLogprob,
    echoed_prompt,
    figures,
    parse_logprobs,
)
from gpt_tui.backends.openai.probe import (
    ProbeReport,
    echo_body,
    probe,
    tokenize_pieces,
)
from gpt_tui.backends.openai.servers import (
    KINDS,
    ServerKind,
    detect_kind,
    ignored_settings,
    sampling_fields,
)
from gpt_tui.backends.openai.vocab import PieceVocabulary
from gpt_tui.engine import SamplingParams, TokenEvent, TokenScore
from gpt_tui.engine.generate import StopStringHold
from gpt_tui.errors import BackendError

DEFAULT_N_CTX = 4096  # when the server does not say; its own limit still applies (it answers 400)

#: finish reasons as the engine names them; the server's "stop" is an end of text because stop
#: strings never reach it
FINISH = {"stop": "eos", "length": "length", "eos": "eos"}

LOOK_INSIDE = "look inside needs the local engine: a server does not share the model's activations"
SPECULATIVE = "speculative decoding needs the local engine (a server runs its own, if it has one)"


@dataclass(frozen=True)
class RemoteModel:
    """One entry of a server's /v1/models."""

    id: str
    owned_by: str = ""


def list_models(client: ServerClient) -> list[RemoteModel]:
    return [RemoteModel(str(m["id"]), str(m.get("owned_by", ""))) for m in _models(client)]


def _models(client: ServerClient) -> list[dict[str, Any]]:
    answer = client.get_json("models", timeout=client.timeouts.probe)
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list) or not all(isinstance(m, dict) and "id" in m for m in data):
        raise BackendError(f"{client.base_url}/models did not list models as OpenAI's API does")
    return data


class OpenAIBackend:
    """A model on an OpenAI-compatible server; build it with `connect`."""

    def __init__(
        self,
        client: ServerClient,
        kind: ServerKind,
        report: ProbeReport,
        n_ctx: int | None = None,
    ) -> None:
        self.client = client
        self.kind = kind
        self.report = report
        self.model = report.model
        self.name = f"{report.model} @ {client.base_url}"
        self.n_ctx = n_ctx or report.n_ctx or DEFAULT_N_CTX
        self.capabilities = capabilities_of(kind, report)
        self.tokenizer = PieceVocabulary(self._split)
        self._echoes: dict[str, list[PieceLogprob]] = {}  # text -> its echo, for score()

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.name!r}, kind={self.kind.name!r})"

    def close(self) -> None:
        self.client.close()

    # --- generation ------------------------------------------------------------------------

    def generate(self, request: Request) -> Iterator[TokenEvent]:
        params = request.params()
        self._tell_ignored(request, params)
        chat = request.messages is not None
        if chat and not self.capabilities.chat:
            raise BackendError(self.capabilities.why_not("chat") or "no chat here")
        if not chat and not self.capabilities.completion:
            raise BackendError(self.capabilities.why_not("completion") or "no completions here")
        if not chat:
            self._score_prompt(request)
        if request.speculative not in ("off", "") and request.on_notice is not None:
            request.on_notice(SPECULATIVE)
        # at least 1 when the server reports any: the token's own probability comes with them
        n = min(max(request.n_top, 1), self._n_alternatives(chat))
        if chat:
            body = {
                "model": self.model,
                "messages": request.messages,
                **self._sampling(params),
                **({"logprobs": True, "top_logprobs": n} if n else {}),
            }
            path = "chat/completions"
        else:
            body = {
                "model": self.model,
                "prompt": self.tokenizer.decode(request.context),
                **self._sampling(params),
            }
            if n:
                body["logprobs"] = n
            path = "completions"
        stream = _Stream(
            self.tokenizer, params, request.n_top, len(request.context), chat, request.on_notice
        )
        with contextlib.closing(self.client.stream(path, body)) as chunks:
            yield from stream.run(chunks)

    def generate_batch(self, requests: Sequence[Request]) -> Iterator[tuple[int, TokenEvent]]:
        """Parallel requests (up to the kind's `parallel`), events interleaved as they come."""
        if not 1 <= len(requests) <= 8:
            raise ValueError(f"generate_batch takes 1 to 8 streams, not {len(requests)}")
        return _interleave([lambda r=r: self.generate(r) for r in requests], self.kind.parallel)

    def _n_alternatives(self, chat: bool) -> int:
        return self.report.chat_alternatives if chat else self.capabilities.alternatives

    def _sampling(self, params: SamplingParams) -> dict[str, Any]:
        fields = sampling_fields(self.kind, params)
        if "seed" not in self.capabilities.sampling:
            fields.pop(self.kind.params.get("seed", "seed"), None)
        return fields

    def _tell_ignored(self, request: Request, params: SamplingParams) -> None:
        ignored = ignored_settings(self.kind, params, self.capabilities.sampling)
        if ignored and request.on_notice is not None:
            reasons = "; ".join(self.capabilities.why_not(name) or name for name in ignored)
            request.on_notice(f"not applied here: {reasons}")

    def _score_prompt(self, request: Request) -> None:
        """Prompt scores for `on_prompt_scored`: the ones past `reuse_limit` (None: none due)."""
        if request.on_prompt_scored is None or request.reuse_limit is None:
            return
        if not self.capabilities.prompt_scoring:
            return
        try:
            scores = self.score(request.context)
        except BackendError as exc:
            if request.on_notice is not None:
                request.on_notice(f"prompt not scored: {exc}")
            return
        request.on_prompt_scored([s for s in scores if s.position >= request.reuse_limit])

    # --- scoring and tokenizing ------------------------------------------------------------

    def score(self, context: list[int]) -> list[TokenScore]:
        if not self.capabilities.prompt_scoring:
            raise BackendError(self.capabilities.why_not("prompt_scoring") or "no prompt scoring")
        if len(context) < 2:
            return []
        text = self.tokenizer.decode(context)
        entries = self._echo(text)
        if [self.tokenizer.intern(e.piece) for e in entries] != list(context):
            raise BackendError(
                "cannot score: the server splits this text into other tokens than the ones shown "
                "(a branch or an edit joined pieces it reads differently)"
            )
        scores = []
        for position, entry in enumerate(entries):
            if position == 0 or entry.logprob is None:
                continue  # nothing precedes the first token
            f = figures(entry, self.tokenizer, self.capabilities.alternatives)
            scores.append(
                TokenScore(
                    position=position,
                    token_id=f.token_id,
                    text=self.tokenizer.token_text(f.token_id),
                    prob=f.prob,
                    logprob=f.logprob,
                    rank=f.rank,
                    entropy=f.entropy,
                    top=f.top,
                )
            )
        return scores

    def _echo(self, text: str) -> list[PieceLogprob]:
        cached = self._echoes.get(text)
        if cached is not None:
            return cached
        n = max(1, self.capabilities.alternatives)
        answer = self.client.post_json("completions", echo_body(self.kind, self.model, text, n))
        choices = answer.get("choices") if isinstance(answer, dict) else None
        if not choices:
            raise BackendError("the server's echo has no choices")
        entries = echoed_prompt(text, parse_logprobs(choices[0].get("logprobs")))
        if len(self._echoes) > 64:
            self._echoes.clear()
        self._echoes[text] = entries
        return entries

    def _split(self, text: str) -> list[bytes]:
        """The server's pieces of `text`: its tokenize endpoint, else an echo, else one piece."""
        if self.report.tokenize:
            return tokenize_pieces(self.client, self.kind, text)
        if self.report.echo:
            return [e.piece for e in self._echo(text)]
        return [text.encode("utf-8")]


class _Stream:
    """Chunks of one streamed answer -> TokenEvents, through the stop-string hold.

    The newest event waits until the next chunk: only then is it known whether it is the last
    (the finish reason often comes in a chunk of its own)."""

    def __init__(
        self, vocab: PieceVocabulary, params: SamplingParams, n_top: int, start: int, chat: bool,
        on_notice: Callable[[str], None] | None = None,
    ) -> None:  # fmt: skip
        self.vocab, self.params, self.n_top, self.start = vocab, params, n_top, start
        self.chat, self.on_notice = chat, on_notice
        self.hold = StopStringHold()
        self.index = 0
        self.sampled_prob = 1.0 if params.greedy else math.nan
        # where the next token's text should start, by the server's own text offsets
        self.next_offset: int | None = None
        self.lost = 0  # characters the server's offsets count but its streamed text lacks

    def run(self, chunks: Iterator[dict[str, Any]]) -> Iterator[TokenEvent]:
        try:
            yield from self._run(chunks)
        finally:
            if self.lost and self.on_notice is not None:
                self.on_notice(
                    f"the server's streamed text lacks {self.lost} character(s) its token offsets "
                    "count (llama-cpp-python streams characters of several bytes as empty text "
                    "when logprobs are on): the text shown misses them"
                )

    def _run(self, chunks: Iterator[dict[str, Any]]) -> Iterator[TokenEvent]:
        pending: TokenEvent | None = None
        try:
            for chunk in chunks:
                choices = chunk.get("choices")
                if not isinstance(choices, list):
                    raise BackendError("stopped: the server sent an event without choices")
                if not choices:
                    continue  # a usage-only chunk
                choice = choices[0]
                if not isinstance(choice, dict):
                    raise BackendError("stopped: the server sent a malformed choice")
                for event in self._events(choice):
                    if pending is not None:
                        ready, stopped = self.hold.push(pending, self.params.stop)
                        yield from ready
                        if stopped:
                            return
                    pending = event
                finish = choice.get("finish_reason")
                if finish:
                    if pending is not None:
                        last = _replace(pending, finish_reason=FINISH.get(str(finish), str(finish)))
                        ready, _ = self.hold.push(last, self.params.stop)
                        yield from ready
                    return
            # [DONE] without a finish reason: an answer ended early (llama-cpp-python does this
            # when another request interrupts it)
            raise BackendError("stopped: the server ended the answer without saying why")
        except BackendError:
            # keep what arrived: the held events are real tokens, shown as they came
            kept = [*self.hold.pending, *([pending] if pending is not None else [])]
            self.hold.pending = []
            pending = None
            yield from kept
            raise

    def _events(self, choice: dict[str, Any]) -> list[TokenEvent]:
        if self.chat:
            delta = choice.get("delta") or {}
            text = delta.get("content") if isinstance(delta, dict) else None
        else:
            text = choice.get("text")
        text = text if isinstance(text, str) else ""
        entries = parse_logprobs(choice.get("logprobs"))
        if not entries:
            if not text:
                return []
            # a server (or chunk) without logprobs: the text is real, its odds unknown
            return [self._unknown(text)]
        texts = _align(text, entries)
        for entry, piece_text in zip(entries, texts, strict=True):
            if entry.offset is not None:
                if self.next_offset is not None and entry.offset > self.next_offset:
                    self.lost += entry.offset - self.next_offset
                self.next_offset = entry.offset + len(piece_text)
        return [
            self._event(entry, piece_text) for entry, piece_text in zip(entries, texts, strict=True)
        ]

    def _event(self, entry: PieceLogprob, text: str) -> TokenEvent:
        f = figures(entry, self.vocab, self.n_top)
        token_id = f.token_id
        if text and not entry.exact and entry.text != text:
            # a server that names tokens by strings only writes "" (or a broken character) for a
            # token holding part of a UTF-8 character; the text it streamed is what it printed,
            # so that is this token's piece: decoding the context then gives the server's text
            token_id = self.vocab.intern(text.encode("utf-8"))
        event = TokenEvent(
            index=self.index,
            token_id=token_id,
            text=text,
            prob=f.prob,
            logprob=f.logprob,
            sampled_prob=self.sampled_prob,
            rank=f.rank,
            entropy=f.entropy,
            top=f.top,
            position=self.start + self.index,
        )
        self.index += 1
        return event

    def _unknown(self, text: str) -> TokenEvent:
        event = TokenEvent(
            index=self.index,
            token_id=self.vocab.intern(text.encode("utf-8")),
            text=text,
            prob=math.nan,
            logprob=math.nan,
            sampled_prob=math.nan,
            rank=0,
            entropy=math.nan,
            top=(),
            position=self.start + self.index,
        )
        self.index += 1
        return event


def _align(text: str, entries: list[PieceLogprob]) -> list[str]:
    """Split a chunk's text among its tokens: each takes its own piece while the text goes on
    with it; the last takes what is left (a server holds back a partial UTF-8 character and
    sends it with a later token)."""
    out = []
    rest = text
    for i, entry in enumerate(entries):
        if i == len(entries) - 1:
            out.append(rest)
        elif entry.text and rest.startswith(entry.text):
            out.append(entry.text)
            rest = rest[len(entry.text) :]
        else:
            out.append("")
    return out


def _replace(event: TokenEvent, **changes: Any) -> TokenEvent:
    return dataclasses.replace(event, **changes)


_DONE = object()


def _interleave(makers: list, parallel: int) -> Iterator[tuple[int, TokenEvent]]:
    """Run each generator in a thread (at most `parallel` at once) and yield (index, event) as
    they come. Closing this iterator tells every thread to stop at its next event."""
    out: queue.Queue = queue.Queue()
    stop = threading.Event()
    slots = threading.Semaphore(max(1, parallel))

    def run(i: int) -> None:
        with slots:
            try:
                if stop.is_set():
                    return
                with contextlib.closing(makers[i]()) as events:
                    for event in events:
                        out.put((i, event))
                        if stop.is_set():
                            return
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
                out.put((i, exc))
            finally:
                out.put((i, _DONE))

    threads = [
        threading.Thread(target=run, args=(i,), daemon=True, name=f"remote-{i}")
        for i in range(len(makers))
    ]
    for t in threads:
        t.start()
    running = len(threads)
    first_error: BaseException | None = None
    try:
        while running:
            i, item = out.get()
            if item is _DONE:
                running -= 1
            elif isinstance(item, BaseException):
                first_error = first_error or item
            else:
                yield i, item
        if first_error is not None:
            raise first_error
    finally:
        stop.set()


def capabilities_of(kind: ServerKind, report: ProbeReport) -> Capabilities:
    """The probe's findings as the core reads them; every missing feature says why."""
    where = f"{kind.label} ({report.model})"
    unavailable: dict[str, str] = {
        "look_inside": LOOK_INSIDE,
        "speculative": SPECULATIVE,
        "sampled_prob": "a server does not report a token's probability under its sampling "
        "settings (shown only for greedy decoding, where it is 1)",
        "entropy": "entropy from a server is a lower bound, from the alternatives it lists",
    }
    if not report.completions:
        unavailable["completion"] = f"{where} offers chat only: no raw text continuation"
    if not report.chat:
        unavailable["chat"] = f"{where} has no working /v1/chat/completions"
    alternatives = report.alternatives if report.completions else report.chat_alternatives
    if alternatives == 0:
        reason = next((n for n in report.notes if "logprobs" in n), None)
        unavailable["alternatives"] = reason or f"{where} reports no token probabilities"
    if not report.echo_trusted:
        reason = next((n for n in report.notes if "prompt scor" in n or "echo" in n), None)
        unavailable["prompt_scoring"] = reason or f"{where} cannot score a prompt's tokens"
    sampling = set(kind.params) | {"stop", "max_tokens"}
    if report.seed is False:
        sampling.discard("seed")
        unavailable["seed"] = f"{where} does not honour seed (two equal seeds gave different text)"
    for name in SAMPLING_SETTINGS:
        if name not in sampling and name not in unavailable:
            unavailable[name] = f"{name.replace('_', ' ')}: {where} takes no such setting"
    return Capabilities(
        completion=report.completions,
        chat=report.chat,
        alternatives=alternatives,
        prompt_scoring=report.echo_trusted,
        look_inside=False,
        speculative=False,
        batch=report.completions or report.chat,
        sampling=frozenset(sampling),
        unavailable=unavailable,
    )


def connect(
    url: str,
    api_key: str | None = None,
    *,
    model: str | None = None,
    kind: str | None = None,
    timeouts: Timeouts | None = None,
    n_ctx: int | None = None,
) -> OpenAIBackend:
    """Connect to the server at `url` (…/v1), pick `model` (default: the one the URL names after
    `#`, as in http://host:8000/v1#qwen2, else the first it lists), find out what kind of server
    it is (unless `kind` says) and probe what it can do."""
    model = model or urlsplit(url.strip()).fragment or None
    client = ServerClient(url, api_key, timeouts)
    try:
        models = _models(client)
        if not models:
            raise BackendError(f"{client.base_url} serves no models")
        ids = [str(m["id"]) for m in models]
        chosen = model or ids[0]
        if chosen not in ids:
            raise BackendError(
                f"{client.base_url} has no model {chosen!r}; it has: {', '.join(ids)}"
            )
        if kind is not None and kind not in KINDS:
            raise BackendError(f"unknown server kind {kind!r}; known: {', '.join(KINDS)}")
        kind_name = kind or detect_kind(
            client.base_url, models, lambda p: client.get_json(p, timeout=client.timeouts.probe)
        )
        server = KINDS[kind_name]
        report = probe(client, server, chosen, models)
        return OpenAIBackend(client, server, report, n_ctx)
    except BaseException:
        client.close()
        raise


def status_line(backend: OpenAIBackend) -> str:
    """One line for the app's status bar: where, and what is missing."""
    caps = backend.capabilities
    parts = [f"{backend.kind.label}: {backend.model}"]
    parts.append(f"{caps.alternatives} alternatives" if caps.alternatives else "no probabilities")
    if not caps.prompt_scoring:
        parts.append("no prompt scores")
    parts.append("no look inside")
    return " · ".join(parts)


def describe(backend: OpenAIBackend) -> list[str]:
    """Lines for `gpt-tui models URL` and the status line: what works, then what does not."""
    caps, report = backend.capabilities, backend.report
    lines = [f"{backend.kind.label} at {backend.client.base_url}, model {backend.model}"]
    works = []
    if caps.completion:
        works.append(f"completions with {caps.alternatives} alternatives per token")
    if caps.chat:
        works.append(
            f"chat with {report.chat_alternatives} alternatives"
            if report.chat_alternatives
            else "chat (no logprobs)"
        )
    if caps.prompt_scoring:
        works.append(
            "prompt scoring (agrees with its generation logprobs within "
            f"{report.echo_error:.3f} nats)"
        )
    lines.append("can: " + "; ".join(works) if works else "can: nothing that was tried")
    lines.append("sampling: " + ", ".join(s for s in SAMPLING_SETTINGS if s in caps.sampling))
    for feature in (
        "completion",
        "chat",
        "alternatives",
        "prompt_scoring",
        "look_inside",
        "speculative",
    ):
        why = caps.why_not(feature)
        if why:
            lines.append(f"not here: {why}")
    for name in SAMPLING_SETTINGS:
        why = caps.why_not(name)
        if why:
            lines.append(f"not here: {why}")
    lines.extend(
        f"note: {n}" for n in (*backend.kind.notes, *report.notes) if n not in "\n".join(lines)
    )
    return lines


__all__ = [
    "OpenAIBackend",
    "RemoteModel",
    "capabilities_of",
    "connect",
    "describe",
    "list_models",
    "status_line",
]
