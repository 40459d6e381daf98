"""The layouts a weight matrix may be held in, and rearranging a model's matrices into the one
its kernel plan chose.

Two layouts, the same bytes: column blocks (`BlockedMatrix`, engine/blocked.py: [n_blocks, n_in,
BLOCK]) and the transpose's rows padded to whole blocks (`RowMatrix`, engine/rows.py:
[n_blocks*BLOCK, n_in]). Block b of one is rows b*BLOCK.. of the other in the same place,
transposed, so a matrix changes layout in place, a few blocks at a time (`rearranged`), and the
planner times a layout on the other's memory read as it (`same_bytes_as`), with no copy.

Weights are converted and kept on disk in blocks (models/model_dir.py); a model whose plan says
rows is rearranged as it is built (`arrange`). Peak memory grows by `REARRANGE_BYTES`, not by a
matrix: arena-held weights (one allocation for all, for huge pages) could not give a matrix's
memory back before the last one was copied, so copying would have held the weights twice.
Measured loading a converted directory on the Intel Xeon host: peak RSS 526 -> 528 MB for GPT-2
124M, 565 -> 567 MB for SmolLM2, the rearranging taking 0.31 and 0.34 s.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpt_tui.engine.blocked import BLOCK, BlockedMatrix
from gpt_tui.engine.params import HELD, flatten_params, unflatten_params
from gpt_tui.engine.rows import RowMatrix

BLOCKS, ROWS = "blocks", "rows"
LAYOUTS = (BLOCKS, ROWS)
REARRANGE_BYTES = 1 << 20
"""At most this much (or one block) is copied aside at once while a matrix is rearranged in
place. Larger steps are no faster: GPT-2 124M's 494 MB took 0.26-0.31 s into rows with 1, 4 or
16 MB aside, 0.41 s with 64 (Intel Xeon host)."""


def layout_of(m: Any) -> str | None:
    if isinstance(m, BlockedMatrix):
        return BLOCKS
    if isinstance(m, RowMatrix):
        return ROWS
    return None


def rearranged(m: BlockedMatrix | RowMatrix, layout: str) -> BlockedMatrix | RowMatrix:
    """`m` in `layout`, in `m`'s own memory, which `m` gives up (it refuses to compute
    afterwards). Memory that may not be written (not ours) is copied instead."""
    if layout not in LAYOUTS:
        raise ValueError(f"no weight layout {layout!r}; known: {', '.join(LAYOUTS)}")
    if layout_of(m) == layout:
        return m
    n_in, n_out = m.shape
    if isinstance(m, BlockedMatrix):
        chunks = m.give_up_blocks()  # [n_blocks, n_in, BLOCK]
        rows = _transpose_chunks(chunks)  # [n_blocks, BLOCK, n_in]
        return RowMatrix(rows.reshape(-1, n_in), n_out)  # [n_blocks*BLOCK, n_in]
    chunks = m.give_up_rows().reshape(-1, BLOCK, n_in)  # [n_blocks, BLOCK, n_in]
    return BlockedMatrix(_transpose_chunks(chunks), n_out)  # [n_blocks, n_in, BLOCK]


def same_bytes_as(m: BlockedMatrix | RowMatrix, layout: str) -> BlockedMatrix | RowMatrix:
    """`m`'s memory read as a matrix of the same shape in `layout`: its values are `m`'s in
    another order. For timing a layout without a copy (plan/measure.py); never for results."""
    if layout_of(m) == layout:
        return m
    n_in, n_out = m.shape
    if isinstance(m, BlockedMatrix):
        return RowMatrix(m.blocks.reshape(-1, n_in), n_out)  # [n_blocks*BLOCK, n_in]
    return BlockedMatrix(m.rows.reshape(-1, n_in, BLOCK), n_out)  # [n_blocks, n_in, BLOCK]


def arrange(params: dict[str, Any], layout: str) -> dict[str, Any]:
    """The same params with every held matrix in `layout` (rearranged in place, one at a time:
    the params given up are the model's own from then on)."""
    flat = flatten_params(params)
    for name, m in flat.items():
        if isinstance(m, HELD):
            flat[name] = rearranged(m, layout)
    return unflatten_params(flat)


def _transpose_chunks(chunks: np.ndarray) -> np.ndarray:
    """chunks [n, p, q] -> [n, q, p] in the same memory (chunk i's bytes stay in place)."""
    n, p, q = chunks.shape
    read_only = not chunks.flags.writeable
    try:
        chunks.flags.writeable = True
    except ValueError:  # memory we may not write (a buffer not NumPy's): the one copy
        return np.ascontiguousarray(chunks.transpose(0, 2, 1))
    if not chunks.flags.c_contiguous:
        return np.ascontiguousarray(chunks.transpose(0, 2, 1))
    out = chunks.reshape(n, q, p)  # [n, q, p]: the same bytes
    step = max(1, REARRANGE_BYTES // max(1, p * q * chunks.itemsize))
    for a in range(0, n, step):
        aside = chunks[a : a + step].copy()  # [step, p, q]
        out[a : a + step] = aside.transpose(0, 2, 1)  # [step, q, p]
    if read_only:
        out.flags.writeable = False
    return out
