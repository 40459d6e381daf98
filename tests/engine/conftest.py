"""Fixtures shared by the engine's tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from gpt_tui.engine import GPT2, Llama
from gpt_tui.engine.cores import Settings, Split
from gpt_tui.engine.layout import LAYOUTS
from gpt_tui.engine.plan import Plan, Planned

EVERY_PLAN = {
    "one core": Settings(),
    "shared": Settings(decode={1: Split(parts=2), 8: Split(parts=3)}, prefill=Split(parts=2)),
    "blas threads": Settings(decode={1: Split(blas_threads=2)}, prefill=Split(blas_threads=2)),
    "attention shared, odd tile": Settings(
        attention_min_keys=0, attention_parts=2, query_tile=5, prefill_attention_parts=2
    ),
    "tile 1": Settings(query_tile=1),
    "rows, one core": Settings(layout="rows"),
    "rows, shared": Settings(
        decode={1: Split(parts=2), 8: Split(parts=3)}, prefill=Split(parts=3), layout="rows"
    ),
    "rows, block @ x^T": Settings(
        decode={
            1: Split(blas_threads=2),
            4: Split(block_first=True),
            8: Split(parts=2, block_first=True),
        },
        layout="rows",
    ),  # fmt: skip
    "rows, blas threads then shared": Settings(
        decode={1: Split(blas_threads=2), 8: Split(parts=2)},
        prefill=Split(blas_threads=2),
        attention_min_keys=0,
        attention_parts=2,
        query_tile=5,
        layout="rows",
    ),  # fmt: skip
}


@pytest.fixture(params=list(EVERY_PLAN.values()), ids=list(EVERY_PLAN))
def every_plan(request: pytest.FixtureRequest) -> Settings:
    """Each kind of plan the planner can choose: the numbers must not change with it."""
    return request.param


@pytest.fixture
def prefill_in_chunks(monkeypatch: pytest.MonkeyPatch) -> Callable[[GPT2 | Llama, int], None]:
    """`prefill_in_chunks(model, n)` makes the model prefill n positions at a time for the
    test (its plan otherwise as it is)."""

    def chunked(model: GPT2 | Llama, chunk: int) -> None:
        settings = replace(model.planned.plan.settings, prefill_chunk=chunk)
        monkeypatch.setattr(model, "planned", Planned(Plan(settings, key={})))

    return chunked


def layout_plan(layout: str) -> Plan:
    """A plan that arranges the weights in `layout` (one core for the rest)."""
    return Plan(Settings(layout=layout), key={})


@pytest.fixture(scope="session", params=LAYOUTS)
def tiny_gpt2(request: pytest.FixtureRequest, tiny_gpt2: GPT2, tiny_params: dict) -> GPT2:
    """The tiny GPT-2 (tests/conftest.py's) in each weight layout: the engine's tests hold
    under both."""
    return GPT2(tiny_params, tiny_gpt2.hparams, plan=layout_plan(request.param))


@pytest.fixture(scope="session", params=LAYOUTS)
def tiny_random_llama(
    request: pytest.FixtureRequest, tiny_random_llama: Llama, tiny_llama_params: dict
) -> Llama:
    """The tiny random LLaMA (tests/conftest.py's) in each weight layout."""
    return Llama(tiny_llama_params, tiny_random_llama.hparams, plan=layout_plan(request.param))
