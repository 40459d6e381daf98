"""The sampling settings a model's authors recommend, where the model ships them.

Two places hold them:
- a Hugging Face directory's `generation_config.json` (transformers' `GenerationConfig`:
  `do_sample`, `temperature`, `top_k`, `top_p`, `min_p`, `typical_p`, `repetition_penalty`);
  conversion copies the file into the converted model's directory;
- a GGUF file's `general.sampling.*` metadata (gguf-py's `Keys.General.SAMPLING_*`: `temp`,
  `top_k`, `top_p`, `min_p`, `xtc_probability`, `xtc_threshold`, `penalty_repeat`, `mirostat`,
  `mirostat_tau`, `mirostat_eta`, `sequence`), which llama.cpp's converter writes from
  generation_config.json. The converted model's `source.json` names the GGUF it came from.

The bundled SmolLM2 GGUF carries no `general.sampling.*` key, so it has no recommendation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GENERATION_CONFIG = "generation_config.json"

#: generation_config.json key -> SamplingParams field (transformers' names)
_HF_KEYS = {
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "repetition_penalty": "repetition_penalty",
}

#: general.sampling.* key -> SamplingParams field; penalty_last_n has no equivalent here (the
#: engine's repetition penalty sees the whole context) and is left out
_GGUF_KEYS = {
    "temp": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "min_p": "min_p",
    "xtc_probability": "xtc_probability",
    "xtc_threshold": "xtc_threshold",
    "penalty_repeat": "repetition_penalty",
    "mirostat_tau": "mirostat_tau",
    "mirostat_eta": "mirostat_eta",
}

#: llama.cpp's sampler names in `general.sampling.sequence` -> the engine's stage names
_GGUF_STAGES = {
    "penalties": "penalties",
    "dry": "dry",
    "top_n_sigma": "top_n_sigma",
    "top_k": "top_k",
    "typ_p": "typical_p",
    "typical_p": "typical_p",
    "top_p": "top_p",
    "min_p": "min_p",
    "xtc": "xtc",
    "temperature": "temperature",
    "temp": "temperature",
}


@dataclass(frozen=True)
class Recommended:
    """A model's recommended sampling settings (SamplingParams field -> value), and where they
    were read from (for the user: "generation_config.json", "GGUF general.sampling.*")."""

    settings: dict[str, Any]
    source: str


def recommended_sampling(model_dir: Path | None) -> Recommended | None:
    """The recommendation of the model converted into `model_dir`, or None when it ships none.

    An unreadable file counts as none: a recommendation is a convenience, never a reason for a
    model not to open.
    """
    if model_dir is None:
        return None
    config = model_dir / GENERATION_CONFIG
    if config.is_file():
        return _from_generation_config(config)
    gguf_path = _gguf_source(model_dir)
    if gguf_path is not None:
        return _from_gguf(gguf_path)
    return None


def _from_generation_config(path: Path) -> Recommended | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    settings = {ours: data[key] for key, ours in _HF_KEYS.items() if _number(data.get(key))}
    if data.get("do_sample") is False:
        # transformers decodes greedily then, whatever temperature the file also gives
        settings = {"temperature": 0.0}
    if not settings:
        return None
    return Recommended(settings, GENERATION_CONFIG)


def _gguf_source(model_dir: Path) -> Path | None:
    try:
        source = json.loads((model_dir / "source.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    path = source.get("path") if isinstance(source, dict) else None
    if isinstance(path, str) and path.endswith(".gguf") and Path(path).is_file():
        return Path(path)
    return None


def _from_gguf(path: Path) -> Recommended | None:
    import gguf  # the GGUF reader: only for a model converted from a GGUF

    try:
        reader = gguf.GGUFReader(path)
    except (OSError, ValueError):
        return None
    prefix = "general.sampling."
    fields = {
        name.removeprefix(prefix): field.contents()
        for name, field in reader.fields.items()
        if name.startswith(prefix)
    }
    settings = {ours: fields[key] for key, ours in _GGUF_KEYS.items() if _number(fields.get(key))}
    if fields.get("mirostat") not in (None, 2):
        settings.pop("mirostat_tau", None)  # mirostat v1 (or off): the engine has v2 only
        settings.pop("mirostat_eta", None)
    sequence = fields.get("sequence")
    if isinstance(sequence, str) and sequence:
        names = [_GGUF_STAGES.get(s.strip()) for s in sequence.split(";")]
        if all(names):
            settings["sampler_order"] = _with_biases(names)  # type: ignore[arg-type]
    if not settings:
        return None
    return Recommended(settings, "GGUF general.sampling.*")


def _with_biases(names: list[str]) -> list[str]:
    """llama.cpp applies logit biases before its chain; the engine names them as stages."""
    out = ["logit_bias", "banned_tokens"]
    for name in names:
        if name not in out:
            out.append(name)
    return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
