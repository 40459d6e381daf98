"""Servers' log probabilities -> what the engine reports per token (probability, rank, entropy,
alternatives), honestly: what a server does not report is not made up.

Two shapes exist:
- OpenAI's legacy completions (OpenAI, vLLM, llama-cpp-python): `{"tokens": [...],
  "token_logprobs": [...], "top_logprobs": [{piece: logprob}, ...], "text_offset": [...]}`;
- the chat shape, which llama-server and Ollama also use for completions: `{"content": [{"token",
  "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}]}`.

What a remote token's figures mean (they differ from the local engine's where noted):
- `prob`, `logprob`, alternatives: the server's numbers, checked (finite, at most 0, the
  alternatives' probabilities summing to at most 1).
- `rank`: the token's place among the alternatives the server listed when it is one of them;
  otherwise one more than how many were listed (`unlisted_rank`): "somewhere beyond the top n".
- `entropy`: a lower bound from the listed alternatives (each unlisted token carries part of the
  remaining mass, and -q log q summed over them is at least -r log r for the remainder r).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gpt_tui.backends.openai.vocab import PieceVocabulary, piece_bytes
from gpt_tui.engine import Alternative
from gpt_tui.errors import BackendError

TOLERANCE = 1e-3  # slack for rounding in a server's float32 -> JSON numbers


@dataclass(frozen=True)
class PieceLogprob:
    """One token as a server reported it: its piece, log probability, listed alternatives."""

    piece: bytes
    text: str
    logprob: float | None  # None: the first token of an echoed prompt (nothing predicts it)
    top: tuple[tuple[bytes, str, float], ...]  # (piece, text, logprob), likeliest first
    offset: int | None = None  # where its text starts in the echoed text (legacy shape only)
    exact: bool = False  # `piece` is the server's own bytes, not a string's UTF-8


def parse_logprobs(logprobs: Any) -> list[PieceLogprob]:
    """The tokens of one choice's `logprobs` field, in either shape ([] for null)."""
    if logprobs is None:
        return []
    if not isinstance(logprobs, dict):
        raise _malformed("logprobs is not an object")
    if "content" in logprobs:
        content = logprobs["content"] or []
        if not isinstance(content, list):
            raise _malformed("logprobs.content is not a list")
        return [_content_entry(entry) for entry in content]
    tokens = logprobs.get("tokens") or []
    values = logprobs.get("token_logprobs") or []
    tops = logprobs.get("top_logprobs") or [None] * len(tokens)
    offsets = logprobs.get("text_offset") or [None] * len(tokens)
    if not (len(tokens) == len(values) == len(tops)) or len(offsets) != len(tokens):
        raise _malformed("logprobs lists of different lengths")
    out = []
    for text, value, top, offset in zip(tokens, values, tops, offsets, strict=True):
        if not isinstance(text, str):
            raise _malformed("a token that is not a string")
        if top is not None and not isinstance(top, dict):
            raise _malformed("top_logprobs entry is not an object")
        alternatives = [(piece_bytes(t), t, _logprob(v)) for t, v in (top or {}).items()]
        out.append(
            PieceLogprob(
                piece_bytes(text),
                text,
                None if value is None else _logprob(value),
                _ordered(alternatives),
                offset if isinstance(offset, int) else None,
            )
        )
    return out


def _content_entry(entry: Any) -> PieceLogprob:
    if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
        raise _malformed("a logprobs.content entry without a token")
    alternatives = []
    for alt in entry.get("top_logprobs") or []:
        if not isinstance(alt, dict) or not isinstance(alt.get("token"), str):
            raise _malformed("a top_logprobs entry without a token")
        text = alt["token"]
        alternatives.append(
            (piece_bytes(text, alt.get("bytes")), text, _logprob(alt.get("logprob")))
        )
    text = entry["token"]
    return PieceLogprob(
        piece_bytes(text, entry.get("bytes")),
        text,
        _logprob(entry.get("logprob")),
        _ordered(alternatives),
        exact=isinstance(entry.get("bytes"), list),
    )


def echoed_prompt(text: str, entries: list[PieceLogprob]) -> list[PieceLogprob]:
    """The entries that are the prompt's own tokens (an echo also has the generated one).

    With text offsets (the legacy shape), each token's piece is the prompt's text from its
    offset to the next one: a character split over several tokens is then whole in the last of
    them (their log probabilities add up: the probability of the whole character), where the
    tokens' own strings would be "" or broken. Without offsets the pieces themselves must spell
    the prompt. A beginning-of-text token a server puts in front is dropped. Raises
    BackendError when the tokens do not make up the prompt."""
    if entries and all(e.offset is not None for e in entries):
        return _cut_at_offsets(text, entries)
    target = text.encode("utf-8")
    while entries and (not entries[0].piece or not target.startswith(entries[0].piece)):
        entries = entries[1:]
    out: list[PieceLogprob] = []
    size = 0
    for entry in entries:
        if size >= len(target):
            break
        out.append(entry)
        size += len(entry.piece)
    if b"".join(e.piece for e in out) != target:
        raise BackendError("the server's echoed tokens do not spell the prompt it was sent")
    return out


def _cut_at_offsets(text: str, entries: list[PieceLogprob]) -> list[PieceLogprob]:
    inside = [e for e in entries if e.offset is not None and e.offset < len(text)]
    starts = [e.offset for e in inside]
    if not inside or starts[0] != 0 or starts != sorted(starts):
        raise BackendError("the server's echoed token offsets do not fit the prompt it was sent")
    out: list[PieceLogprob] = []
    carried: float | None = None  # log probability of the tokens that printed nothing yet
    top: tuple[tuple[bytes, str, float], ...] | None = None
    for i, entry in enumerate(inside):
        end = starts[i + 1] if i + 1 < len(inside) else len(text)
        piece_text = text[entry.offset : end]
        logprob = entry.logprob
        if carried is not None:
            logprob = carried + (logprob or 0.0)
        if top is None:
            top = entry.top
        if not piece_text:
            carried = logprob if logprob is not None else 0.0
            continue
        out.append(PieceLogprob(piece_text.encode("utf-8"), piece_text, logprob, top, entry.offset))
        carried, top = None, None
    return out


def _ordered(alternatives: list[tuple[bytes, str, float]]) -> tuple[tuple[bytes, str, float], ...]:
    """Likeliest first; one entry per piece (a server may list two tokens that print alike)."""
    seen: set[bytes] = set()
    out = []
    for alt in sorted(alternatives, key=lambda a: -a[2]):
        if alt[0] not in seen:
            seen.add(alt[0])
            out.append(alt)
    return tuple(out)


def _logprob(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _malformed(f"a log probability that is not a number ({value!r})")
    value = float(value)
    if math.isnan(value) or value > TOLERANCE:
        raise _malformed(f"a log probability of {value} (it must be at most 0)")
    # llama-server writes the lowest float for a probability of 0 (JSON has no -inf)
    return max(min(value, 0.0), -1e30)


def _malformed(what: str) -> BackendError:
    return BackendError(f"the server's logprobs cannot be read: {what}")


@dataclass(frozen=True)
class TokenFigures:
    """What the inspector and colouring show for one token."""

    token_id: int
    prob: float
    logprob: float
    rank: int
    entropy: float
    top: tuple[Alternative, ...]


def figures(entry: PieceLogprob, vocab: PieceVocabulary, n_top: int) -> TokenFigures:
    """The token's figures; raises BackendError when the numbers cannot be a distribution."""
    if entry.logprob is None:
        raise _malformed("a generated token without a log probability")
    listed = entry.top
    total = sum(math.exp(lp) for _, _, lp in listed)
    if total > 1 + TOLERANCE:
        raise BackendError(
            f"the server's alternatives have probabilities summing to {total:.3f} (more than 1): "
            "its logprobs cannot be trusted"
        )
    token_id = vocab.intern(entry.piece)
    rank = rank_among(entry.piece, entry.logprob, listed)
    top = tuple(Alternative(vocab.intern(p), vocab.token_text(vocab.intern(p)), math.exp(lp))
                for p, _, lp in listed[:n_top] if n_top > 0)  # fmt: skip
    return TokenFigures(
        token_id=token_id,
        prob=math.exp(entry.logprob),
        logprob=entry.logprob,
        rank=rank,
        entropy=entropy_lower_bound(entry.piece, entry.logprob, listed),
        top=top,
    )


def unlisted_rank(n_listed: int) -> int:
    """The rank given to a token that is not among the `n_listed` alternatives: n + 1."""
    return n_listed + 1


def rank_among(piece: bytes, logprob: float, listed: Sequence[tuple[bytes, str, float]]) -> int:
    """1 + how many listed alternatives are likelier, when the token is listed; else n + 1."""
    if any(p == piece for p, _, _ in listed):
        return 1 + sum(1 for p, _, lp in listed if lp > logprob and p != piece)
    return unlisted_rank(len(listed))


def entropy_lower_bound(
    piece: bytes, logprob: float, listed: Sequence[tuple[bytes, str, float]]
) -> float:
    """Nats; exact when the listed alternatives (and the token) hold all the mass."""
    probs = {p: math.exp(lp) for p, _, lp in listed}
    probs.setdefault(piece, math.exp(logprob))
    known = sum(probs.values())
    h = -sum(q * math.log(q) for q in probs.values() if q > 0)
    rest = 1.0 - known
    if rest > 1e-9:
        h -= rest * math.log(rest)
    return max(h, 0.0)
