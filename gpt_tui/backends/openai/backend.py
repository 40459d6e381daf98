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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from gpt_tui.backends.base import Request
from gpt_tui.backends.openai.capabilities import INTERVENTIONS, SPECULATIVE, capabilities_of
from gpt_tui.backends.openai.client import ServerClient, Timeouts
from gpt_tui.backends.openai.logprobs import (
    PieceLogprob,
    echoed_prompt,
    figures,
    parse_logprobs,
)
from gpt_tui.backends.openai.parallel import interleave
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
from gpt_tui.backends.openai.step import ServerStep, llama_server_step, missing_note
from gpt_tui.backends.openai.stream import TokenStream
from gpt_tui.backends.openai.vocab import PieceVocabulary
from gpt_tui.engine import SamplingParams, TextScore, TokenEvent, TokenScore
from gpt_tui.engine.generate import window_keep
from gpt_tui.engine.hooked import Interventions
from gpt_tui.errors import BackendError

DEFAULT_N_CTX = 4096  # when the server does not say; its own limit still applies (it answers 400)


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
        self.name = f"{display_name(report.model)} @ {client.base_url}"
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
        if request.interventions:
            raise BackendError(INTERVENTIONS)
        params = request.params()
        self._tell_ignored(request, params)
        chat = request.messages is not None
        dropped = 0
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
            kept, dropped = _window(request.context, self.n_ctx)
            body = {
                "model": self.model,
                "prompt": self.tokenizer.decode(kept),
                **self._sampling(params),
            }
            if n:
                body["logprobs"] = n
            path = "completions"
        stream = TokenStream(
            self.tokenizer, params, request.n_top, len(request.context), chat, request.on_notice
        )
        with contextlib.closing(self.client.stream(path, body)) as chunks:
            for event in stream.run(chunks):
                if dropped and event.index == 0:
                    event = dataclasses.replace(event, dropped=dropped)
                yield event

    def generate_batch(self, requests: Sequence[Request]) -> Iterator[tuple[int, TokenEvent]]:
        """Parallel requests (up to the kind's `parallel`), events interleaved as they come."""
        if not 1 <= len(requests) <= 8:
            raise ValueError(f"generate_batch takes 1 to 8 streams, not {len(requests)}")
        return interleave([lambda r=r: self.generate(r) for r in requests], self.kind.parallel)

    def _n_alternatives(self, chat: bool) -> int:
        return self.report.chat_alternatives if chat else self.capabilities.alternatives

    def _sampling(self, params: SamplingParams) -> dict[str, Any]:
        fields = sampling_fields(self.kind, params, self._token_text)
        if "seed" not in self.capabilities.sampling:
            fields.pop(self.kind.params.get("seed", "seed"), None)
        return fields

    def _token_text(self, token_id: int) -> str:
        """A piece's text, as a server that takes tokens by their text reads it."""
        return self.tokenizer.token_bytes(token_id).decode("utf-8", errors="replace")

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
            scores = self.score(request.context, request.n_top).tokens
        except BackendError as exc:
            if request.on_notice is not None:
                request.on_notice(f"prompt not scored: {exc}")
            return
        request.on_prompt_scored([s for s in scores if s.position >= request.reuse_limit])

    # --- the sampler view ------------------------------------------------------------------

    def sampler_note(self, n: int) -> str:
        """What the sampler view cannot show on this server, in one line (`n`: the number of
        tokens it lists)."""
        return missing_note(self.kind.name, self.kind.post_sampling, n)

    def sampler_step(self, context: list[int], params: SamplingParams, n: int) -> ServerStep:
        """The step after `context` under `params` as this server gives it: llama-server's top
        n before and after its sampling chain (backends/openai/step.py). A request: call it
        off the UI thread. BackendError on a server that does not say what sampling does."""
        if not self.kind.post_sampling:
            raise BackendError(self.sampler_note(n))
        kept, _ = _window(context, self.n_ctx)
        prompt = self.tokenizer.decode(kept)
        return llama_server_step(self.client, self.tokenizer, prompt, self._sampling(params), n)

    # --- scoring and tokenizing ------------------------------------------------------------

    def score(
        self, context: list[int], n_top: int = 5, interventions: Interventions | None = None
    ) -> TextScore:
        """The server's echo of the text, checked against the pieces shown; the first token has
        no score (no beginning-of-text token is put before it on a server)."""
        if interventions:
            raise BackendError(INTERVENTIONS)
        if not self.capabilities.prompt_scoring:
            raise BackendError(self.capabilities.why_not("prompt_scoring") or "no prompt scoring")
        if len(context) < 2:
            return TextScore((), False)
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
        return TextScore(tuple(scores), False)

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


def _window(context: list[int], n_ctx: int) -> tuple[list[int], int]:
    """The end of a prompt too long for the server's context, as the engine keeps it (its first
    tokens dropped, a quarter of the context left for the reply); and how many were dropped."""
    if len(context) < n_ctx:
        return context, 0
    keep = window_keep(n_ctx)
    return context[-keep:], len(context) - keep


def display_name(model: str) -> str:
    """A model id as the app shows it: llama-cpp-python names a model by its file's path, of
    which the file name says all (other ids, like ORG/NAME, are shown whole)."""
    return PurePosixPath(model).name if model.startswith("/") else model


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


__all__ = ["OpenAIBackend", "RemoteModel", "connect", "list_models"]
