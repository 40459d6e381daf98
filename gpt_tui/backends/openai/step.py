"""One step's distribution as a server gives it, for the sampler view.

The sampler view runs the stages over the whole next-token distribution; a server sends only
its top n tokens. What each kind gives, and no more is claimed:
- llama-server: POST /completion with `n_probs` answers the model's top n before sampling (a
  softmax of the raw logits), and with `post_sampling_probs: true` the top n after its whole
  sampling chain under the settings sent (tools/server/README.md: `completion_probabilities`,
  one entry per generated token, with `top_logprobs` [{id, token, bytes, logprob}] before and
  `top_probs` [{id, token, bytes, prob}] after; "the number of elements in `top_probs` may be
  less than `n_probs`"). The view asks both ways, one token each, and again when a setting moves.
- the other kinds: the alternatives their stream sent with the token, before sampling only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gpt_tui.backends.openai.client import ServerClient
from gpt_tui.backends.openai.logprobs import parse_logprobs
from gpt_tui.backends.openai.vocab import PieceVocabulary, piece_bytes
from gpt_tui.engine import Alternative
from gpt_tui.errors import BackendError

COMPLETION = "/completion"  # llama-server's own endpoint, at the server's root


def missing_note(name: str, post_sampling: bool, n: int) -> str:
    """What the sampler view cannot show on this kind of server, in one line (of 80 columns)."""
    if post_sampling:
        return (
            f"{name}: its top {n} before and after its sampling; each stage needs the local engine"
        )
    return f"{name}: its top {n} before sampling only; the stages need the local engine"


@dataclass(frozen=True)
class ServerStep:
    """A step as a server gave it: its top tokens before sampling, after it (None: this
    server does not say), and the token it drew there under the settings sent."""

    before: tuple[Alternative, ...]
    after: tuple[Alternative, ...] | None = None
    drawn: int | None = None


def llama_server_step(
    client: ServerClient,
    vocab: PieceVocabulary,
    prompt: str,
    sampling: dict[str, Any],
    n: int,
) -> ServerStep:
    """The step after `prompt` on llama-server, under the request fields `sampling`: two
    one-token /completion requests, before and after its sampling chain."""
    body = {**sampling, "prompt": prompt, "n_predict": 1, "n_probs": n, "stream": False,
            "cache_prompt": True}  # fmt: skip
    body.pop("max_tokens", None)
    before = _first(client.post_json(COMPLETION, {**body, "post_sampling_probs": False}))
    after = _first(client.post_json(COMPLETION, {**body, "post_sampling_probs": True}))
    (entry,) = parse_logprobs({"content": [before]})
    return ServerStep(
        before=tuple(
            Alternative(vocab.intern(piece), text, math.exp(lp)) for piece, text, lp in entry.top
        ),
        after=tuple(_probs(after.get("top_probs"), vocab)),
        drawn=vocab.intern(_piece(after)),
    )


def _first(answer: Any) -> dict[str, Any]:
    rows = answer.get("completion_probabilities") if isinstance(answer, dict) else None
    if not isinstance(rows, list) or not rows or not isinstance(rows[0], dict):
        raise BackendError("llama-server's /completion answered without completion_probabilities")
    return rows[0]


def _piece(entry: dict[str, Any]) -> bytes:
    token = entry.get("token")
    if not isinstance(token, str):
        raise BackendError("llama-server's completion_probabilities has an entry without a token")
    return piece_bytes(token, entry.get("bytes"))


def _probs(entries: Any, vocab: PieceVocabulary) -> Sequence[Alternative]:
    if not isinstance(entries, list):
        raise BackendError("llama-server answered post_sampling_probs without top_probs")
    out = []
    for entry in entries:
        prob = entry.get("prob") if isinstance(entry, dict) else None
        if not isinstance(prob, (int, float)) or not 0.0 <= prob <= 1.0 + 1e-6:
            raise BackendError("llama-server's top_probs has a probability outside [0, 1]")
        out.append(Alternative(vocab.intern(_piece(entry)), str(entry["token"]), float(prob)))
    return sorted(out, key=lambda a: -a.prob)
