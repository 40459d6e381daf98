"""A Hugging Face model directory: what it holds, whether gpt-tui runs it, and its hparams.

A directory as `save_pretrained` (or the Hub) leaves it: `config.json` (the architecture and
its hyper-parameters), the weights in `*.safetensors` (sharded with
`model.safetensors.index.json`), and the tokenizer (`tokenizer.json`, `tokenizer_config.json`,
maybe `chat_template.jinja`, and `generation_config.json` with the end-of-turn ids).

`open_checkpoint` checks everything that can be checked without reading the weights, so a
directory gpt-tui cannot run is refused at once with what to do, before any conversion starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpt_tui.engine.layers import ROPE_SCALINGS
from gpt_tui.errors import ModelFileError
from gpt_tui.models.hf.safetensors import read_header, weight_files

CONFIG_FILE = "config.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
                   "generation_config.json", "special_tokens_map.json")  # fmt: skip

#: Hugging Face's class name (config.json "architectures") -> our engine's architecture.
ARCHITECTURES = {
    "GPT2LMHeadModel": "gpt2",
    "LlamaForCausalLM": "llama",
    "Qwen2ForCausalLM": "llama",  # LLaMA with biases on q, k and v
}
PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.ckpt")


@dataclass(frozen=True)
class HFCheckpoint:
    path: Path
    config: dict[str, Any] = field(hash=False)
    hf_architecture: str  # "LlamaForCausalLM"
    weights: tuple[Path, ...]

    @property
    def architecture(self) -> str:
        """The engine's architecture: "gpt2" or "llama"."""
        return ARCHITECTURES[self.hf_architecture]


def looks_like_checkpoint(path: Path) -> bool:
    """A directory with a config.json: a Hugging Face model, runnable or not (open it to find
    out why not)."""
    return path.is_dir() and (path / CONFIG_FILE).is_file()


def is_complete(snapshot: Path) -> bool:
    """The files a model needs are all there (whether they are good is for conversion to say)."""
    try:
        return (
            (snapshot / CONFIG_FILE).is_file()
            and (snapshot / "tokenizer.json").is_file()
            and bool(weight_files(snapshot))
        )
    except ModelFileError:
        return False  # an index naming a shard that is not there yet


def open_checkpoint(path: Path, label: str | None = None) -> HFCheckpoint:
    """The checkpoint in `path`, or a ModelFileError saying what is wrong and what to do.
    `label` names it in messages (a repo id instead of a snapshot's path)."""
    label = label or str(path)
    config = read_config(path, label)
    architecture = architecture_of(config, label)
    weights = weight_files(path)
    if not weights:
        pickled = [name for name in PICKLE_FILES if (path / name).exists()]
        if pickled:
            raise ModelFileError(
                f"{label} has only a PyTorch pickle checkpoint ({pickled[0]}), which gpt-tui "
                "never loads (unpickling runs code from the file); use a revision with "
                "*.safetensors weights, or convert it yourself with transformers' "
                "save_pretrained(dir, safe_serialization=True)"
            )
        raise ModelFileError(
            f"{label} has no weights (no *.safetensors files); fetch the model again, or point "
            "gpt-tui at the directory that holds them"
        )
    if not (path / "tokenizer.json").is_file():
        raise ModelFileError(
            f"{label} has no tokenizer.json (gpt-tui reads tokenizers in the Hugging Face "
            "`tokenizers` format); copy it from the model's repository into the directory"
        )
    checkpoint = HFCheckpoint(path, config, architecture, tuple(weights))
    hparams_of(checkpoint, label)  # refuses what the engine cannot run, before converting
    return checkpoint


def read_config(path: Path, label: str) -> dict[str, Any]:
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
    except FileNotFoundError:
        raise ModelFileError(f"{label} has no {CONFIG_FILE}; it is not a model directory") from None
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{label}: {CONFIG_FILE} is damaged ({exc})") from exc
    if not isinstance(config, dict):
        raise ModelFileError(f"{label}: {CONFIG_FILE} does not hold a JSON object")
    return config


def architecture_of(config: dict[str, Any], label: str) -> str:
    names = config.get("architectures") or []
    for name in names:
        if name in ARCHITECTURES:
            return name
    shown = ", ".join(map(str, names)) or f"model_type {config.get('model_type')!r}"
    raise ModelFileError(
        f"{label} is a {shown} model; gpt-tui runs {', '.join(ARCHITECTURES)} (GPT-2, LLaMA "
        "such as SmolLM2 and TinyLlama, Qwen2)"
    )


def hparams_of(checkpoint: HFCheckpoint, label: str | None = None) -> dict[str, Any]:
    """Our hparams.json for the checkpoint (`engine.gpt2` / `engine.llama` names)."""
    label = label or str(checkpoint.path)
    try:
        if checkpoint.architecture == "gpt2":
            return _gpt2_hparams(checkpoint.config, label)
        return _llama_hparams(checkpoint.config, checkpoint.hf_architecture, label)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{label}: {CONFIG_FILE} lacks or garbles {exc}") from exc


def _gpt2_hparams(config: dict[str, Any], label: str) -> dict[str, Any]:
    activation = config.get("activation_function", "gelu_new")
    eps = float(config.get("layer_norm_epsilon", 1e-5))
    n_inner = config.get("n_inner") or 4 * int(config["n_embd"])
    if activation != "gelu_new" or abs(eps - 1e-5) > 1e-12 or n_inner != 4 * config["n_embd"]:
        raise ModelFileError(
            f"{label} is a GPT-2 variant (activation {activation}, layer-norm epsilon {eps}, "
            f"MLP width {n_inner}); gpt-tui's GPT-2 runs gelu_new, epsilon 1e-5 and an MLP "
            "four times the width only"
        )
    return {
        "architecture": "gpt2",
        "n_vocab": int(config["vocab_size"]),
        "n_ctx": int(config.get("n_positions", config.get("n_ctx", 1024))),
        "n_embd": int(config["n_embd"]),
        "n_head": int(config["n_head"]),
        "n_layer": int(config["n_layer"]),
    }


def _llama_hparams(config: dict[str, Any], hf_architecture: str, label: str) -> dict[str, Any]:
    n_embd, n_head = int(config["hidden_size"]), int(config["num_attention_heads"])
    # transformers 5 writes `rope_parameters` (theta inside); older configs `rope_theta` and
    # `rope_scaling` beside each other. Both are read.
    rope = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
    rope_base = float(rope.pop("rope_theta", config.get("rope_theta", 10000.0)))
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind not in ROPE_SCALINGS:
        raise ModelFileError(
            f"{label} asks for {kind!r} rope scaling; gpt-tui implements {', '.join(ROPE_SCALINGS)}"
        )
    unsupported = [
        what
        for what, bad in (
            (f"activation {config.get('hidden_act')}", config.get("hidden_act", "silu") != "silu"),
            ("biases in the MLP", bool(config.get("mlp_bias"))),
            ("an output-projection bias", bool(config.get("attention_bias"))),
            ("sliding-window attention", bool(config.get("use_sliding_window"))),
        )
        if bad
    ]
    if unsupported:
        raise ModelFileError(
            f"{label} uses {', '.join(unsupported)}, which gpt-tui's LLaMA does not implement"
        )
    tie = config.get("tie_word_embeddings", False)  # transformers' default for both classes
    return {
        "architecture": "llama",
        "n_vocab": int(config["vocab_size"]),
        "n_ctx": int(config.get("max_position_embeddings", 2048)),
        "n_embd": n_embd,
        "n_head": n_head,
        "n_kv_head": int(config.get("num_key_value_heads") or n_head),
        "head_dim": int(config.get("head_dim") or n_embd // n_head),
        "n_ff": int(config["intermediate_size"]),
        "n_layer": int(config["num_hidden_layers"]),
        "rope_base": rope_base,
        "norm_eps": float(config.get("rms_norm_eps", 1e-6)),
        "tie_word_embeddings": bool(tie),
        "qkv_bias": hf_architecture == "Qwen2ForCausalLM",
        "rope_scaling": {**rope, "rope_type": kind} if kind != "default" else None,
    }


@dataclass(frozen=True)
class Summary:
    """What a model picker shows about a checkpoint, read from headers only (milliseconds)."""

    hf_architecture: str
    n_params: int
    size_bytes: int  # the weights on disk
    supported: bool
    problem: str = ""  # why it cannot run, when it cannot


def summarize(path: Path, label: str | None = None) -> Summary:
    """Architecture, parameter count and size of a directory; never raises for a bad one."""
    label = label or str(path)
    try:
        config = read_config(path, label)
    except ModelFileError as exc:
        return Summary("?", 0, 0, False, str(exc))
    names = config.get("architectures") or [str(config.get("model_type", "?"))]
    hf_architecture = next((n for n in names if n in ARCHITECTURES), str(names[0]))
    n_params = size = 0
    try:
        for file in weight_files(path):
            size += file.stat().st_size
            n_params += sum(t.n_elements for t in read_header(file))
        open_checkpoint(path, label)
    except (ModelFileError, OSError) as exc:
        return Summary(hf_architecture, n_params, size, False, str(exc))
    return Summary(hf_architecture, n_params, size, True)
