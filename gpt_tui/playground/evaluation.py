"""Perplexity of files under models, and a model against a reference: what `gpt-tui eval` runs.

A `FileEval` is one (file, model) pair, planned before any computation (the text's tokens and
the windows, so a progress bar knows the total) and then run slice by slice: `run()` yields
the tokens each slice scored, so the caller draws progress and may stop between slices, and
`result()` sums what was scored so far (marked partial when not all of it). The computation is
engine/perplexity.py's; a remote model is scored with the server's echo of each window.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gpt_tui.backends.local import engine_model
from gpt_tui.engine.perplexity import (
    Totals,
    Window,
    divergence,
    plan_windows,
    slice_rows,
    token_nll,
)
from gpt_tui.engine.perplexity import window_logits as engine_window_logits
from gpt_tui.errors import InputError
from gpt_tui.tokenizer.chat import encode_prompt

ECHO = "the server's echo"
ENGINE = "engine"


def read_text_file(path: str | Path) -> str:
    """A file's text, or InputError saying in one line why it cannot be evaluated."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a text file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if not data.strip():
        raise InputError(f"{path}: the file is empty: nothing to score")
    if b"\x00" in data:
        raise InputError(f"{path}: a binary file (it holds NUL bytes), not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "convert it first, e.g. with iconv"
        ) from None


def same_tokenizer(a: Any, b: Any) -> bool:
    """Whether two tokenizers give the same ids for every text: the same tokens' bytes for the
    same ids, and the same beginning-of-text habit."""
    if a is b:
        return True
    if a.n_vocab != b.n_vocab or a.bos_id != b.bos_id:
        return False
    if getattr(a, "add_bos", False) != getattr(b, "add_bos", False):
        return False
    return all(a.token_bytes(i) == b.token_bytes(i) for i in range(a.n_vocab))


def is_remote(backend: Any) -> bool:
    return engine_model(backend) is None


def text_ids(tokenizer: Any, text: str, remote: bool = False) -> np.ndarray:
    """A text's ids, with the beginning-of-text token first where the tokenizer puts it before
    every text (then the text's first token is scored too). Special-token names in the text are
    text. A server's pieces come as it splits the text."""
    ids = tokenizer.encode(text) if remote else encode_prompt(tokenizer, text)
    return np.asarray(ids, dtype=np.int64)


@dataclass(frozen=True)
class EvalResult:
    """One (file, model): the figures of the JSON and CSV output."""

    file: str
    model: str
    tokens: int  # tokens scored
    nll: float  # mean negative log-likelihood, nats per token
    perplexity: float
    bits_per_byte: float
    n_bytes: int  # UTF-8 bytes of the scored tokens
    ctx: int
    stride: int
    partial: bool  # stopped before every token was scored
    via: str  # ENGINE or ECHO
    reference: str | None = None
    against: dict[str, Any] | None = None  # kl_mean, same_top1, delta_p {mean, p1, ..., p99}
    positions: int = 0  # positions the windows computed for it (the overlaps again)

    def as_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "file": self.file,
            "model": self.model,
            "tokens": self.tokens,
            "nll": _finite(self.nll),
            "perplexity": _finite(self.perplexity),
            "bits_per_byte": _finite(self.bits_per_byte),
            "bytes": self.n_bytes,
            "ctx": self.ctx,
            "stride": self.stride,
            "partial": self.partial,
            "scored_by": self.via,
        }
        if self.against is not None:
            row["against"] = {"reference": self.reference, **self.against}
        return row


def _finite(x: float) -> float | None:
    """JSON has no NaN: a figure over no tokens is null."""
    return x if math.isfinite(x) else None


class FileEval:
    """One file under one model (and, with `reference`, against it), planned and run by slices.

    `ctx` None: the model's context (the smaller of the two with a reference); `stride` None:
    half of the window. Raises InputError for what the user can correct (a window larger than
    the model's context, a stride larger than the window, a text too short, a reference with
    another tokenizer).
    """

    def __init__(
        self,
        file: str,
        text: str,
        model_name: str,
        backend: Any,
        *,
        ctx: int | None = None,
        stride: int | None = None,
        reference: tuple[str, Any] | None = None,
    ) -> None:
        self.file, self.model_name, self.backend = file, model_name, backend
        self.reference_name, self.reference = reference if reference else (None, None)
        self.remote = is_remote(backend)
        limit, limited_by = backend.n_ctx, model_name
        if self.reference is not None:
            if self.remote or is_remote(self.reference):
                raise InputError(
                    "--against needs both models' full distributions: a server reports only "
                    "a few alternatives per token, so the model and the reference must be local"
                )
            if not same_tokenizer(backend.tokenizer, self.reference.tokenizer):
                raise InputError(
                    f"--against {self.reference_name}: its tokenizer is not {model_name}'s; "
                    "KL divergence compares distributions over the same tokens"
                )
            if self.reference.n_ctx < limit:
                limit, limited_by = self.reference.n_ctx, str(self.reference_name)
        self.ctx = limit if ctx is None else ctx
        if self.ctx > limit:
            raise InputError(f"--ctx {self.ctx} is larger than {limited_by}'s context of {limit}")
        self.stride = max(1, self.ctx // 2) if stride is None else stride
        if self.stride > self.ctx:
            raise InputError(
                f"--stride {self.stride} is larger than the window (--ctx {self.ctx}): "
                "tokens between windows would never be scored"
            )
        self.ids = text_ids(backend.tokenizer, text, self.remote)
        try:
            self.windows: list[Window] = plan_windows(len(self.ids), self.ctx, self.stride)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        self.total = sum(w.n_scored for w in self.windows)
        if not self.total:
            raise InputError(f"{file}: too short to score under {model_name} (one token)")
        self.totals = Totals()
        self.positions = 0  # computed so far, context included

    def run(self) -> Iterator[int]:
        """Score the windows; yields the tokens each slice scored."""
        if self.remote:
            yield from self._run_echo()
            return
        model = engine_model(self.backend)
        tokenizer = self.backend.tokenizer
        cache = model.new_cache()
        ref_model = engine_model(self.reference) if self.reference is not None else None
        ref_cache = ref_model.new_cache() if ref_model is not None else None
        rows = slice_rows(model)  # the reference's slices must be the same rows
        for window in self.windows:
            slices = engine_window_logits(model, self.ids, window, cache, rows)
            ref_slices = (
                engine_window_logits(ref_model, self.ids, window, ref_cache, rows)
                if ref_model is not None
                else None
            )
            self.positions += window.end - window.begin
            for logits, targets in slices:
                div = None
                if ref_slices is not None:
                    ref_logits, _ = next(ref_slices)
                    div = divergence(logits, ref_logits, targets)
                n_bytes = len(tokenizer.decode_bytes(targets.tolist()))
                self.totals.add(token_nll(logits, targets), n_bytes, div)
                yield len(targets)

    def _run_echo(self) -> Iterator[int]:
        """A remote model: each window's text echoed by the server with its tokens' logprobs."""
        tokenizer = self.backend.tokenizer
        for window in self.windows:
            scored = self.backend.score(self.ids[window.begin : window.end].tolist(), n_top=1)
            self.positions += window.end - window.begin
            first = window.first - window.begin  # positions of `scored` count from the window
            tokens = [t for t in scored.tokens if t.position >= first]
            nll = np.array([-t.logprob for t in tokens], dtype=np.float64)
            n_bytes = len(tokenizer.decode_bytes([t.token_id for t in tokens]))
            self.totals.add(nll, n_bytes)
            yield len(tokens)

    def result(self) -> EvalResult:
        t = self.totals
        return EvalResult(
            file=self.file,
            model=self.model_name,
            tokens=t.tokens,
            nll=t.mean_nll,
            perplexity=t.perplexity,
            bits_per_byte=t.bits_per_byte,
            n_bytes=t.n_bytes,
            ctx=self.ctx,
            stride=self.stride,
            partial=t.tokens < self.total,
            via=ECHO if self.remote else ENGINE,
            reference=self.reference_name,
            against=t.against(),
            positions=self.positions,
        )
