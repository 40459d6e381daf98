"""The converted-model directory: the one format the engine loads, fast and without pickle.

A directory holds

    hparams.json        {"architecture": "gpt2"|"llama", ...the architecture's hyper-parameters}
    model.safetensors   every weight, float32, under a flat dotted name ("blocks.3.attn.c_attn.w")
    tokenizer files     encoder.json + vocab.bpe (GPT-2), or tokenizer.json (GGUF-derived)

Nested params (the layout of OpenAI's checkpoint, see the architecture notes) are flattened to
dotted names on write and rebuilt on read, so the engine sees the same dict either way.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from gpt_tui.engine.params import Params, flatten_params, unflatten_params
from gpt_tui.errors import ModelFileError

HPARAMS_FILE = "hparams.json"
WEIGHTS_FILE = "model.safetensors"


def write_model_dir(
    target: Path,
    params: Params,
    hparams: dict[str, Any],
    extra_files: dict[str, Path | bytes] | None = None,
) -> Path:
    """Write a converted-model directory atomically: a temp dir beside `target`, then a rename.

    `extra_files` maps file names to a source path (copied) or bytes (written): the tokenizer
    files. An interrupted write leaves no `target`, so the next run starts clean.
    """
    from safetensors.numpy import save_file  # keeps the engine's import path free of it

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        flat = {
            name: np.ascontiguousarray(array, dtype=np.float32)
            for name, array in flatten_params(params).items()
        }
        save_file(flat, str(tmp / WEIGHTS_FILE))
        (tmp / HPARAMS_FILE).write_text(json.dumps(hparams, indent=2) + "\n")
        for name, source in (extra_files or {}).items():
            if isinstance(source, bytes):
                (tmp / name).write_bytes(source)
            else:
                shutil.copyfile(source, tmp / name)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def read_hparams(model_dir: Path) -> dict[str, Any]:
    path = Path(model_dir) / HPARAMS_FILE
    try:
        hparams = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ModelFileError(f"{model_dir} is not a model directory (no {HPARAMS_FILE})") from exc
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"cannot read {path}: {exc}") from exc
    if not isinstance(hparams, dict):
        raise ModelFileError(f"{path} does not hold a JSON object")
    hparams.setdefault("architecture", "gpt2")
    return hparams


def read_params(model_dir: Path) -> Params:
    """Load every weight (memory-mapped by safetensors, then copied once into float32 arrays)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(model_dir) / WEIGHTS_FILE
    if not path.exists():
        raise ModelFileError(f"{model_dir} has no {WEIGHTS_FILE}")
    try:
        flat = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"{path} is damaged: {exc}") from exc
    return unflatten_params(flat)
