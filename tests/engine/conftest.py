"""Fixtures shared by the engine's tests."""

from __future__ import annotations

import pytest

from gpt_tui.engine.cores import Settings, Split

EVERY_PLAN = {
    "one core": Settings(),
    "shared": Settings(decode={1: Split(parts=2), 8: Split(parts=3)}, prefill=Split(parts=2)),
    "blas threads": Settings(decode={1: Split(blas_threads=2)}, prefill=Split(blas_threads=2)),
    "attention shared, odd tile": Settings(
        attention_min_keys=0, attention_parts=2, query_tile=5, prefill_attention_parts=2
    ),
    "tile 1": Settings(query_tile=1),
}


@pytest.fixture(params=list(EVERY_PLAN.values()), ids=list(EVERY_PLAN))
def every_plan(request: pytest.FixtureRequest) -> Settings:
    """Each kind of plan the planner can choose: the numbers must not change with it."""
    return request.param
