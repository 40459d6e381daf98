"""The inference engine: pure NumPy computation whose only state is the kv cache.

Nothing here imports Textual, tensorflow or requests.
"""

from gpt_tui.engine.events import FINISH_REASONS, TokenEvent
from gpt_tui.engine.generate import generate, generate_batch, prefill, prepare_prompt
from gpt_tui.engine.gpt2 import GPT2
from gpt_tui.engine.kv_cache import KVCache
from gpt_tui.engine.language_model import LanguageModel
from gpt_tui.engine.llama import Llama
from gpt_tui.engine.sampling import RANGES, ParamRange, Sampler, SamplingParams
from gpt_tui.engine.scoring import Alternative, TextScore, TokenScore, rank_bucket, score_text

__all__ = [
    "FINISH_REASONS",
    "GPT2",
    "RANGES",
    "Alternative",
    "KVCache",
    "LanguageModel",
    "Llama",
    "ParamRange",
    "Sampler",
    "SamplingParams",
    "TokenEvent",
    "TextScore",
    "TokenScore",
    "generate",
    "generate_batch",
    "rank_bucket",
    "score_text",
    "prefill",
    "prepare_prompt",
]
