"""From logits to the next token under `SamplingParams`: an ordered chain of stages.

params.py holds the settings and their ranges, stages.py one small pure function per sampler,
chain.py their order and the per-stage report the sampler view shows, draws.py the seeded
randomness, sampler.py the per-stream state and the draw. Every name other modules imported
from the single module this package replaced is still importable from here.
"""

from __future__ import annotations

from gpt_tui.engine.sampling.chain import (
    SamplerView,
    StageReport,
    active_stages,
    history_for,
    run_chain,
    sampler_view,
    speculation_blocker,
)
from gpt_tui.engine.sampling.draws import (
    draw_index,
    draws,
    fresh_seed,
    position_uniform,
)
from gpt_tui.engine.sampling.params import (
    DEFAULT_ORDER,
    LIST_SETTINGS,
    MAX_TOKENS_LIMIT,
    RANGES,
    ParamRange,
    SamplingParams,
    temperature_last,
)
from gpt_tui.engine.sampling.sampler import Sampler, filter_probs, kept_tokens
from gpt_tui.engine.sampling.select import nucleus, top_indices
from gpt_tui.engine.sampling.stages import STAGES, History, Stage, apply_penalties

__all__ = [
    "DEFAULT_ORDER",
    "LIST_SETTINGS",
    "MAX_TOKENS_LIMIT",
    "RANGES",
    "STAGES",
    "History",
    "ParamRange",
    "Sampler",
    "SamplerView",
    "SamplingParams",
    "Stage",
    "StageReport",
    "active_stages",
    "apply_penalties",
    "draw_index",
    "draws",
    "filter_probs",
    "fresh_seed",
    "history_for",
    "kept_tokens",
    "nucleus",
    "position_uniform",
    "run_chain",
    "sampler_view",
    "speculation_blocker",
    "temperature_last",
    "top_indices",
]
