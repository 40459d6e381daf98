"""What a server can really do, found out by asking it a few tiny questions when connecting.

A server's word is not taken for anything the app shows: each feature is tried with a request of
a few tokens. The checks that matter most:
- logprobs: greedy decoding must pick the token the server itself calls likeliest, and the
  alternatives' probabilities must sum to at most 1 (`logprobs.figures`);
- prompt scoring ("echo"): the server re-reads a prompt plus its own greedy continuation, and
  the log probabilities it reports for those continuation tokens must match the ones it reported
  while generating them. A server that disagrees with itself is not trusted with prompt scores;
- seed: two identical seeded samples agree (and a different seed is allowed to differ).
Each request is bounded by `Timeouts.probe`, the whole probe by `PROBE_BUDGET`.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gpt_tui.backends.openai.client import ServerClient
from gpt_tui.backends.openai.logprobs import (
    TOLERANCE,
    PieceLogprob,
    echoed_prompt,
    parse_logprobs,
    rank_among,
)
from gpt_tui.backends.openai.servers import ServerKind, sampling_fields
from gpt_tui.engine import SamplingParams
from gpt_tui.errors import BackendError

PROBE_PROMPT = "The capital of France is"
PROBE_TOKENS = 4
#: largest disagreement (nats) between a server's echo scores and its generation logprobs that
#: still counts as the same number: batched prompt reading and one-token decoding round
#: differently in float16/quantised kernels, by ~1e-3 on llama.cpp; a wrong number is off by more
ECHO_TOLERANCE = 0.05
PROBE_BUDGET = 60.0  # seconds for the whole probe; later checks are skipped past it


@dataclass
class ProbeReport:
    """The answers, with a note for each thing that did not work or could not be checked."""

    kind: str
    model: str
    models: list[str]
    completions: bool = False
    alternatives: int = 0  # alternatives per token on /v1/completions
    chat: bool = False
    chat_alternatives: int = 0  # 0: chat without logprobs
    logprobs_consistent: bool | None = None  # greedy picks agree with the reported ranks
    echo: bool = False  # it echoes prompt tokens with their logprobs
    echo_error: float | None = None  # largest disagreement with its generation logprobs
    seed: bool | None = None  # None: not checked or inconclusive
    tokenize: bool = False
    n_ctx: int | None = None
    notes: list[str] = field(default_factory=list)
    #: feature -> why it is not available (each also in `notes`)
    why: dict[str, str] = field(default_factory=dict)
    #: the greedy probe's text and tokens, which the echo check reads back
    greedy: tuple[str, list[PieceLogprob]] | None = field(default=None, repr=False)
    seconds: float = 0.0

    def refuse(self, feature: str, reason: str) -> None:
        """Record why `feature` is not available (the first reason found stands)."""
        self.why.setdefault(feature, reason)
        self.notes.append(reason)

    @property
    def echo_trusted(self) -> bool:
        return self.echo and self.echo_error is not None and self.echo_error <= ECHO_TOLERANCE


def probe(
    client: ServerClient, kind: ServerKind, model: str, models: list[dict[str, Any]]
) -> ProbeReport:
    started = time.monotonic()
    report = ProbeReport(kind.name, model, [str(m.get("id")) for m in models])
    report.n_ctx = _context_size(client, kind, model, models)
    steps: list[Callable[[ServerClient, ServerKind, ProbeReport], None]] = [
        _completions, _echo, _chat, _seed, _tokenize,
    ]  # fmt: skip
    for step in steps:
        if time.monotonic() - started > PROBE_BUDGET:
            report.notes.append(f"the probe stopped after {PROBE_BUDGET:g} s: the server is slow")
            break
        step(client, kind, report)
    report.seconds = time.monotonic() - started
    return report


GREEDY = SamplingParams(temperature=0.0, max_tokens=PROBE_TOKENS)


def _post(client: ServerClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.post_json(path, body, timeout=client.timeouts.probe)
    if (
        not isinstance(answer, dict)
        or not isinstance(answer.get("choices"), list)
        or not answer["choices"]
    ):
        raise BackendError(f"{path}: the answer has no choices")
    return answer


def completion_body(
    kind: ServerKind, model: str, prompt: str, params: SamplingParams
) -> dict[str, Any]:
    return {"model": model, "prompt": prompt, **sampling_fields(kind, params)}


def _completions(client: ServerClient, kind: ServerKind, report: ProbeReport) -> None:
    body = completion_body(kind, report.model, PROBE_PROMPT, GREEDY)
    last_error = ""
    for n in dict.fromkeys((kind.max_logprobs, 5, 1)):
        try:
            answer = _post(client, "completions", {**body, "logprobs": n})
        except BackendError as exc:
            last_error = str(exc)
            if " 404 " in last_error or " 405 " in last_error:
                report.refuse("completion", "no /v1/completions here: chat only")
                return
            if "answered 4" not in last_error:
                break  # down or slow: fewer logprobs will not help
            continue
        report.completions = True
        choice = answer["choices"][0]
        try:
            entries = parse_logprobs(choice.get("logprobs"))
        except BackendError as exc:
            report.refuse("alternatives", str(exc))
            return
        # a server may add the picked token to the n it lists: n is what it offers
        report.alternatives = min(n, max((len(e.top) for e in entries), default=0))
        report.logprobs_consistent = _greedy_consistent(entries)
        report.greedy = (choice.get("text") or "", entries)
        if report.alternatives == 0:
            report.refuse(
                "alternatives", "completions come without logprobs: no probabilities to show"
            )
        elif not _sums_at_most_one(entries):
            report.refuse(
                "alternatives",
                "its alternatives' probabilities sum to more than 1: its logprobs are not shown",
            )
            report.alternatives, report.greedy = 0, None  # nor trusted to check an echo
        elif not report.logprobs_consistent:
            report.refuse(
                "alternatives",
                "its logprobs contradict its own greedy choices (the picked token is not the "
                "likeliest it lists): they are not shown",
            )
            report.alternatives, report.greedy = 0, None
        return
    if "answered 4" not in last_error:
        report.refuse("completion", f"completions do not work: {last_error}")
        return
    # logprobs refused (4xx) at every size: completions without them, maybe?
    try:
        _post(client, "completions", body)
        report.completions = True
        report.refuse("alternatives", f"completions take no logprobs here ({last_error})")
    except BackendError as exc:
        report.refuse("completion", f"completions do not work: {exc}")


def _sums_at_most_one(entries: list[PieceLogprob]) -> bool:
    return all(sum(math.exp(lp) for _, _, lp in e.top) <= 1 + TOLERANCE for e in entries)


def _greedy_consistent(entries: list[PieceLogprob]) -> bool:
    for e in entries:
        if e.logprob is None or not e.top:
            continue
        best = e.top[0][2]
        # ties and rounding: the picked token may trail the listed best by a hair
        if rank_among(e.piece, e.logprob, e.top) != 1 and best - e.logprob > 1e-3:
            return False
    return True


def echo_body(kind: ServerKind, model: str, text: str, n: int) -> dict[str, Any]:
    # max_tokens 1, not 0: llama-cpp-python reads 0 as "up to the context size"
    params = SamplingParams(temperature=0.0, max_tokens=1)
    return {**completion_body(kind, model, text, params), "echo": True, "logprobs": max(n, 1)}


def _echo(client: ServerClient, kind: ServerKind, report: ProbeReport) -> None:
    greedy = report.greedy
    if not report.completions or greedy is None or not greedy[1]:
        report.refuse("prompt_scoring", "prompt scoring needs completions with logprobs")
        return
    generated_text, generated = greedy
    text = PROBE_PROMPT + generated_text
    try:
        answer = _post(client, "completions", echo_body(kind, report.model, text, 1))
        entries = echoed_prompt(text, parse_logprobs(answer["choices"][0].get("logprobs")))
    except BackendError as exc:
        report.refuse("prompt_scoring", f"prompt scoring (echo) does not work: {exc}")
        return
    report.echo = True
    errors = [abs(e - g) for e, g in same_tokens(PROBE_PROMPT, generated, entries)]
    if not errors:
        report.refuse(
            "prompt_scoring",
            "prompt scores could not be checked (the server reads its own output back as other "
            "tokens): not shown",
        )
        return
    report.echo_error = max(errors)
    if report.echo_error > ECHO_TOLERANCE:
        report.refuse(
            "prompt_scoring",
            f"its prompt scores disagree with its own generation logprobs for the same tokens "
            f"(by up to {report.echo_error:.2f} nats): prompt scoring is off",
        )


def same_tokens(
    prompt: str, generated: list[PieceLogprob], echoed: list[PieceLogprob]
) -> list[tuple[float, float]]:
    """(echo logprob, generation logprob) of each generated token the echo read back as the
    same piece at the same place. A continuation can be re-read as other tokens ("\n" "\n" as
    "\n\n"); those are skipped, not compared."""
    at = 0
    echo_at: dict[int, PieceLogprob] = {}
    for e in echoed:
        echo_at[at] = e
        at += len(e.piece)
    pairs = []
    at = len(prompt.encode("utf-8"))
    for g in generated:
        e = echo_at.get(at)
        if e is not None and e.piece == g.piece and e.logprob is not None and g.logprob is not None:
            pairs.append((e.logprob, g.logprob))
        at += len(g.piece)
    return pairs


def _chat(client: ServerClient, kind: ServerKind, report: ProbeReport) -> None:
    body = {
        "model": report.model,
        "messages": [{"role": "user", "content": "Say hi."}],
        **sampling_fields(kind, SamplingParams(temperature=0.0, max_tokens=3)),
    }
    n = min(kind.max_logprobs, 20)
    try:
        answer = _post(client, "chat/completions", {**body, "logprobs": True, "top_logprobs": n})
    except BackendError as exc:
        if " 404 " in str(exc):
            report.refuse("chat", "no chat endpoint here")
            return
        try:
            _post(client, "chat/completions", body)
        except BackendError as exc2:
            report.refuse("chat", f"chat does not work: {exc2}")
            return
        report.chat = True
        report.refuse("chat_alternatives", f"chat comes without logprobs here ({exc})")
        return
    report.chat = True
    try:
        entries = parse_logprobs(answer["choices"][0].get("logprobs"))
    except BackendError as exc:
        report.refuse("chat_alternatives", f"chat logprobs: {exc}")
        return
    report.chat_alternatives = min(n, max((len(e.top) for e in entries), default=0))
    if entries and not _greedy_consistent(entries):
        report.chat_alternatives = 0
        report.refuse(
            "chat_alternatives", "its chat logprobs contradict its greedy choices: not shown"
        )


def _seed(client: ServerClient, kind: ServerKind, report: ProbeReport) -> None:
    if "seed" not in kind.params or not (report.completions or report.chat):
        return

    def sample(seed: int) -> str:
        params = SamplingParams(temperature=1.0, max_tokens=8, seed=seed)
        if report.completions:
            answer = _post(
                client, "completions", completion_body(kind, report.model, "Once", params)
            )
            return str(answer["choices"][0].get("text"))
        body = {"model": report.model, "messages": [{"role": "user", "content": "Tell a story."}]}
        answer = _post(client, "chat/completions", {**body, **sampling_fields(kind, params)})
        return str(answer["choices"][0].get("message", {}).get("content"))

    try:
        first, again, other = sample(1234), sample(1234), sample(98765)
    except BackendError as exc:
        report.notes.append(f"seed could not be checked: {exc}")
        return
    if first != again:
        report.seed = False
        report.refuse(
            "seed", "two requests with the same seed gave different text: seed is not honoured"
        )
    elif first != other:
        report.seed = True
    # all three alike: inconclusive (a peaked distribution); the kind's documentation stands


def _tokenize(client: ServerClient, kind: ServerKind, report: ProbeReport) -> None:
    if kind.tokenize is None:
        return
    try:
        pieces = tokenize_pieces(client, kind, "Hello world")
    except BackendError as exc:
        report.notes.append(f"{kind.tokenize} does not work: {exc}")
        return
    report.tokenize = b"".join(pieces) == b"Hello world"


def tokenize_pieces(client: ServerClient, kind: ServerKind, text: str) -> list[bytes]:
    """llama-server's /tokenize with pieces: [{"id", "piece"}] (a piece that is not valid UTF-8
    comes as a list of bytes)."""
    answer = client.post_json(kind.tokenize or "/tokenize", {"content": text, "with_pieces": True})
    tokens = answer.get("tokens") if isinstance(answer, dict) else None
    if not isinstance(tokens, list):
        raise BackendError("/tokenize answered without tokens")
    out = []
    for t in tokens:
        piece = t.get("piece") if isinstance(t, dict) else None
        if isinstance(piece, str):
            out.append(piece.encode("utf-8"))
        elif isinstance(piece, list):
            out.append(bytes(piece))
        else:
            raise BackendError("/tokenize answered without pieces")
    return out


def _context_size(
    client: ServerClient, kind: ServerKind, model: str, models: list[dict[str, Any]]
) -> int | None:
    for m in models:  # vLLM says it in /v1/models
        if m.get("id") == model and isinstance(m.get("max_model_len"), int):
            return int(m["max_model_len"])
    if kind.name == "llama-server":
        try:
            props = client.get_json("/props", timeout=client.timeouts.probe)
            n = props.get("default_generation_settings", {}).get("n_ctx")
            if isinstance(n, int) and n > 0:
                return n
        except (BackendError, AttributeError):
            pass
    if kind.name == "llama-cpp-python":
        return _context_from_refusal(client, model)
    return None


#: "...maximum context length is 2048 tokens..." / "...exceed context window of 2048"
_CONTEXT_IN_MESSAGE = re.compile(r"context (?:length is|window of) (\d+)")


def _context_from_refusal(client: ServerClient, model: str) -> int | None:
    """llama-cpp-python says its context size only when a prompt does not fit: send one that
    cannot (64k one-token words; it is refused while being tokenized, before any computing)."""
    body = {"model": model, "prompt": "a " * 65536, "max_tokens": 1, "temperature": 0.0}
    try:
        client.post_json("completions", body, timeout=client.timeouts.probe)
    except BackendError as exc:
        found = _CONTEXT_IN_MESSAGE.search(str(exc))
        return int(found.group(1)) if found else None
    return None  # it fitted: a context of more than 64k tokens, left unknown


__all__ = ["ProbeReport", "probe"]
