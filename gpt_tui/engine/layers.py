"""The small pure functions a transformer is made of. float32 in, float32 out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

_GELU_C = np.float32(np.sqrt(2.0 / np.pi))


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh form (what GPT-2 was trained with; HF calls it "gelu_new").

    0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))), computed in one buffer. x^3 is
    x * x * x on purpose: NumPy's float32 `x**3` takes a slow pow() path for negative bases,
    which made GELU 200x slower and half of a prefill's time.
    """
    y = x * x
    y *= x
    y *= np.float32(0.044715)
    y += x
    y *= _GELU_C
    np.tanh(y, out=y)
    y += np.float32(1.0)
    y *= x
    y *= np.float32(0.5)
    return y


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    # Subtracting the max keeps exp() finite; masked entries at -inf become exact zeros.
    # One buffer, not three: a prompt's attention scores are the largest temporaries there are.
    # The ufuncs' own reduce, not np.max / np.sum: their Python wrappers cost more than the
    # reduction itself on a decode step's scores (a few µs each, twice a layer).
    e = x - np.maximum.reduce(x, axis=axis, keepdims=True)
    np.exp(e, out=e)
    e /= np.add.reduce(e, axis=axis, keepdims=True)
    return e


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = x - np.maximum.reduce(x, axis=axis, keepdims=True)
    return shifted - np.log(np.add.reduce(np.exp(shifted), axis=axis, keepdims=True))


def layer_norm(
    x: np.ndarray,
    g: np.ndarray,
    b: np.ndarray,
    eps: float = 1e-5,
    scale_hook: Callable[[np.ndarray], object] | None = None,
) -> np.ndarray:
    """g * (x - mean) / sqrt(variance + eps) + b over the last axis, in one buffer.
    `scale_hook` sees the divisor [..., 1] before it divides, and may change it in place
    (engine/hooks.py's `ln_final.hook_scale`).

    The sum of squares is a `vecdot`: `np.var` (and a mean of squares) took 1.05 ms on a
    256-position chunk of GPT-2 124M, an einsum 37 µs, vecdot 15 µs (1.1 µs for one position,
    an einsum 3.1: a decode step has two norms a layer).
    """
    mean = np.add.reduce(x, axis=-1, keepdims=True)  # [..., 1]  (np.mean's wrapper: 5 µs more)
    mean *= np.float32(1.0 / x.shape[-1])
    centered = x - mean  # [..., n_embd]
    scale = _sum_of_squares(centered)  # [..., 1]
    scale *= np.float32(1.0 / x.shape[-1])
    scale += np.float32(eps)
    np.sqrt(scale, out=scale)
    if scale_hook is not None:
        scale_hook(scale)
    centered /= scale
    centered *= g
    centered += b
    return centered


def rms_norm(
    x: np.ndarray,
    g: np.ndarray,
    eps: float = 1e-5,
    scale_hook: Callable[[np.ndarray], object] | None = None,
) -> np.ndarray:
    """g * x / sqrt(mean(x^2) + eps) over the last axis (the sum of squares as in layer_norm);
    `scale_hook` as in layer_norm."""
    scale = _sum_of_squares(x)  # [..., 1]
    scale *= np.float32(1.0 / x.shape[-1])
    scale += np.float32(eps)
    np.sqrt(scale, out=scale)
    if scale_hook is not None:
        scale_hook(scale)
    out = x / scale
    out *= g
    return out


def _sum_of_squares(x: np.ndarray) -> np.ndarray:
    """Sum of x^2 over the last axis, keeping it: [..., n] -> [..., 1]."""
    return np.vecdot(x, x, keepdims=True)


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """x @ w + b with w stored [n_in, n_out], as OpenAI's checkpoints store it."""
    y = x @ w
    if b is not None:
        y += b
    return y


def causal_mask(n_query: int, n_key: int) -> np.ndarray:
    """Additive mask [n_query, n_key]; the queries are the last n_query of the n_key positions."""
    offset = n_key - n_query
    allowed = np.arange(n_key)[None, :] <= (np.arange(n_query)[:, None] + offset)
    return np.where(allowed, np.float32(0.0), np.float32(-np.inf)).astype(np.float32)


def rope_tables(
    positions: np.ndarray,
    head_dim: int,
    base: float = 10000.0,
    scaling: dict[str, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin [n_seq, head_dim // 2] of the rotary angles at the given positions."""
    inv_freq = rope_inverse_frequencies(head_dim, base, scaling)  # [head_dim/2]
    angles = positions.astype(np.float64)[:, None] * inv_freq[None, :]  # [n_seq, head_dim/2]
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


ROPE_SCALINGS = ("default", "linear", "llama3")
"""The `rope_type`s of Hugging Face's configs that `rope_inverse_frequencies` implements."""


def rope_inverse_frequencies(
    head_dim: int, base: float, scaling: dict[str, Any] | None = None
) -> np.ndarray:
    """base^(-2j/head_dim) [head_dim/2], stretched as a long-context `scaling` asks.

    "linear" divides every frequency by `factor` (positions interpolated). "llama3" (Llama 3.1
    and later) leaves the high frequencies, whose wavelengths are short against the original
    context, alone, divides the low ones by `factor`, and blends the band between, exactly as
    transformers' `_compute_llama3_parameters` does.
    """
    inv_freq = base ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)  # [head_dim/2]
    kind = (scaling or {}).get("rope_type", "default")
    if kind == "default":
        return inv_freq
    if kind not in ROPE_SCALINGS:
        raise ValueError(f"rope scaling {kind!r} is not implemented (only {ROPE_SCALINGS})")
    factor = float(scaling["factor"])  # type: ignore[index]
    if kind == "linear":
        return inv_freq / factor
    low, high = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])  # type: ignore[index]
    old_context = float(scaling["original_max_position_embeddings"])  # type: ignore[index]
    wavelength = 2 * np.pi / inv_freq  # [head_dim/2]
    scaled = np.where(wavelength > old_context / low, inv_freq / factor, inv_freq)
    smooth = (old_context / wavelength - low) / (high - low)  # [head_dim/2]
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelength >= old_context / high) & (wavelength <= old_context / low)
    return np.where(medium, smoothed, scaled)
