"""The models gpt-tui knows by name: OpenAI's four GPT-2 sizes and the bundled SmolLM2.

The GPT-2 sizes have two sources: OpenAI's TensorFlow checkpoints (converted with tensorflow)
and their safetensors copies on the Hugging Face Hub (`hub_repo`), which need no tensorflow.
Any other Hugging Face model is named by its repo id; `hub_spec` describes one for a
download prompt.

A `ModelSpec` says what a user needs to know before picking a model: how many parameters, how
much it downloads and how much memory it needs. `resolve` turns what a user typed ("gpt2-xl",
"124m") into a spec, or into an error that lists the names it knows.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Literal

from gpt_tui.engine.gpt2 import expected_shapes
from gpt_tui.errors import UnknownModelError

#: OpenAI's public bucket; files live at `{base}/{size}/{file}`. `GPT_TUI_GPT2_URL` overrides it.
DEFAULT_GPT2_URL = "https://openaipublic.blob.core.windows.net/gpt-2/models"

#: The seven files OpenAI publishes per size, small ones first so a bad URL fails before the
#: big download starts.
GPT2_FILES = (
    "hparams.json",
    "checkpoint",
    "encoder.json",
    "vocab.bpe",
    "model.ckpt.index",
    "model.ckpt.meta",
    "model.ckpt.data-00000-of-00001",
)

_GPT2_TOKENIZER_BYTES = 1_042_301 + 456_318  # encoder.json + vocab.bpe, the same for every size
_GPT2_META_BYTES_PER_LAYER = 39_000  # model.ckpt.meta + .index grow with the layer count


@dataclass(frozen=True)
class ModelSpec:
    name: str
    aliases: tuple[str, ...]
    kind: Literal["gpt2", "gguf", "hf"]
    n_params: int
    download_bytes: int | None  # what a download fetches (bundled: its file size; None: unknown)
    memory_bytes: int | None  # float32 weights plus a full-context kv cache (None: unknown)
    description: str
    bundled: bool = False  # shipped with gpt-tui: nothing to download, works offline
    hparams: dict[str, int] | None = field(default=None, hash=False)  # GPT-2: OpenAI's hparams
    hub_repo: str | None = None  # the same weights on the Hugging Face Hub (GPT-2's sizes)
    source: str = "OpenAI"  # where a download comes from, for a prompt ("About 498 MB from ...")

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


def _n_elements(shape: tuple[int, ...]) -> int:
    n = 1
    for dim in shape:
        n *= dim
    return n


def _gpt2(name: str, alias: str, n_ctx: int, n_embd: int, n_head: int, n_layer: int) -> ModelSpec:
    hparams = {"n_vocab": 50257, "n_ctx": n_ctx, "n_embd": n_embd, "n_head": n_head}
    hparams["n_layer"] = n_layer  # the hparams.json OpenAI publishes for this size
    n_params = sum(_n_elements(s) for s in expected_shapes(hparams).values())
    kv_cache_bytes = 2 * n_layer * n_ctx * n_embd * 4
    return ModelSpec(
        name=name,
        aliases=(alias,),
        kind="gpt2",
        n_params=n_params,
        download_bytes=4 * n_params + _GPT2_TOKENIZER_BYTES + _GPT2_META_BYTES_PER_LAYER * n_layer,
        memory_bytes=4 * n_params + kv_cache_bytes,
        description=f"OpenAI GPT-2, {n_layer} layers, {n_embd} wide, {n_ctx}-token context",
        hparams=hparams,
        hub_repo=f"openai-community/{alias}",  # the Hub's names are the aliases
    )


def hub_spec(repo_id: str, n_params: int = 0, download_bytes: int | None = None) -> ModelSpec:
    """A Hugging Face repo as a spec, for the prompt before fetching it (its size is known only
    once the Hub is asked, so usually None: shown as "?")."""
    return ModelSpec(
        name=repo_id,
        aliases=(),
        kind="hf",
        n_params=n_params,
        download_bytes=download_bytes,
        memory_bytes=None,
        description=f"{repo_id} from the Hugging Face Hub",
        source="the Hugging Face Hub",
    )


SMOLLM2_PARAMS = 134_515_008

CATALOG: tuple[ModelSpec, ...] = (
    _gpt2("124M", "gpt2", n_ctx=1024, n_embd=768, n_head=12, n_layer=12),
    _gpt2("355M", "gpt2-medium", n_ctx=1024, n_embd=1024, n_head=16, n_layer=24),
    _gpt2("774M", "gpt2-large", n_ctx=1024, n_embd=1280, n_head=20, n_layer=36),
    _gpt2("1558M", "gpt2-xl", n_ctx=1024, n_embd=1600, n_head=25, n_layer=48),
    ModelSpec(
        name="smollm2",
        aliases=("smollm2-135m",),
        kind="gguf",
        n_params=SMOLLM2_PARAMS,
        download_bytes=98_000_000,
        # float32 weights plus a 2048-token kv cache (30 layers, 3 kv heads of 64)
        memory_bytes=4 * SMOLLM2_PARAMS + 2 * 30 * 2048 * 3 * 64 * 4,
        description="SmolLM2-135M-Instruct (Hugging Face), bundled: works offline, chat-tuned",
        bundled=True,
    ),
)


#: The published GPT-2 sizes' hyper-parameters, by name ("124M": {"n_embd": 768, ...}).
GPT2_HPARAMS: dict[str, dict[str, int]] = {
    spec.name: spec.hparams for spec in CATALOG if spec.hparams is not None
}


def resolve(name: str) -> ModelSpec:
    """The spec for a model name or alias, case-insensitively ("GPT2-XL" -> 1558M)."""
    wanted = name.strip().lower()
    for spec in CATALOG:
        if wanted in (n.lower() for n in spec.names):
            return spec
    raise UnknownModelError(_unknown_model_message(name))


def _unknown_model_message(name: str) -> str:
    known = [n for spec in CATALOG for n in spec.names]
    by_lower = {n.lower(): n for n in known}
    close = difflib.get_close_matches(name.strip().lower(), list(by_lower), n=1, cutoff=0.6)
    hint = f" (did you mean '{by_lower[close[0]]}'?)" if close else ""
    known_list = ", ".join(spec.name for spec in CATALOG)
    return (
        f"no model '{name}'{hint}; known: {known_list} "
        f"(aliases: {', '.join(a for spec in CATALOG for a in spec.aliases)}), "
        "or a path to a model directory or .gguf file"
    )
