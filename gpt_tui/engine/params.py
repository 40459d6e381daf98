"""Nested params (dicts and lists of arrays, the layout of OpenAI's checkpoint) and flat names.

{"blocks": [{"ln_1": {"g": a}}]} <-> {"blocks.0.ln_1.g": a}: the flat form is how weights are
stored on disk and how shapes are checked; the nested form is what the forward passes read.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpt_tui.engine.blocked import BlockedMatrix, blocks_shape, float32_arena
from gpt_tui.engine.rows import RowMatrix

HELD = (BlockedMatrix, RowMatrix)
"""The classes a weight matrix is held in (anything else 2-D is a plain array)."""

Params = dict[str, Any]


def flatten_params(params: Any, prefix: str = "") -> dict[str, np.ndarray]:
    flat: dict[str, np.ndarray] = {}
    items = enumerate(params) if isinstance(params, list) else params.items()
    for key, value in items:
        name = f"{prefix}{key}"
        if isinstance(value, (dict, list)):
            flat.update(flatten_params(value, name + "."))
        elif isinstance(value, HELD):
            flat[name] = value
        else:
            flat[name] = np.asarray(value)
    return flat


def unflatten_params(flat: dict[str, np.ndarray]) -> Params:
    """Inverse of `flatten_params`; numeric path parts become list indices."""
    root: dict[str, Any] = {}
    for name, array in flat.items():
        node = root
        parts = name.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = array
    return _lists_from_numeric_keys(root)


def _lists_from_numeric_keys(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _lists_from_numeric_keys(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[str(i)] for i in range(len(converted))]
    return converted


def as_float32(params: Any) -> Any:
    """The same nesting with every array float32 and C-contiguous (copies only where needed)."""
    if isinstance(params, dict):
        return {key: as_float32(value) for key, value in params.items()}
    if isinstance(params, list):
        return [as_float32(value) for value in params]
    if isinstance(params, HELD):
        return params  # float32 by construction
    return np.ascontiguousarray(params, dtype=np.float32)


def plain_matrices(flat: dict[str, Any], prefix: str = "") -> list[str]:
    """Names under `prefix` of the 2-D arrays not yet held in a layout (engine/layout.py)."""
    return [
        name
        for name, a in flat.items()
        if name.startswith(prefix) and isinstance(a, np.ndarray) and a.ndim == 2
    ]


def blocked_in_place(flat: dict[str, Any], names: list[str]) -> None:
    """Replace the plain matrices `names` of `flat` by `BlockedMatrix`es (engine/blocked.py:
    the logical shape stays, `x @ w` reads the same) in one arena, one at a time. When `flat`
    holds the only reference to a matrix (a converter's), it is freed as soon as its copy is
    written, so converting takes the weights' memory once, not twice."""
    places = float32_arena([blocks_shape(*flat[name].shape) for name in names])
    for name, place in zip(names, places, strict=True):
        flat[name] = BlockedMatrix.from_matrix(flat[name], out=place)


def check_shapes(params: Params, expected: dict[str, tuple[int, ...]]) -> None:
    """Raise ValueError naming the first few parameters whose shape is not the expected one."""
    actual = {name: tuple(a.shape) for name, a in flatten_params(params).items()}
    wrong = [
        f"{name}: {actual.get(name, 'missing')} (expected {shape})"
        for name, shape in expected.items()
        if actual.get(name) != shape
    ]
    if wrong:
        raise ValueError("parameters do not match hparams: " + "; ".join(wrong[:5]))
