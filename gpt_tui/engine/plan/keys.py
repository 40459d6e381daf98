"""What a kernel plan depends on: the machine (CPU, cores, NumPy and BLAS builds) and the
model's shapes. A kept plan is reused only for the same key."""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np

from gpt_tui.engine import cores
from gpt_tui.engine.cores import blas_threads_sleep
from gpt_tui.engine.params import HELD, flatten_params
from gpt_tui.engine.plan.records import PLAN_VERSION


def machine_key() -> dict[str, Any]:
    """The machine's traits a plan depends on."""
    return {
        "cpu": cpu_name(),
        "cores": cores.n_cores(),
        "numpy": np.__version__,
        "blas": blas_build(),
        "plan_version": PLAN_VERSION,
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_build() -> str:
    from threadpoolctl import threadpool_info

    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    build = "; ".join(
        f"{i.get('internal_api')} {i.get('version')} {i.get('architecture', '')}".strip()
        for i in blas
    )
    # What is fastest differs when BLAS's idle threads spin (see gpt_tui/__init__.py).
    return build if blas_threads_sleep() else f"{build} (idle threads spin)"


def model_key(model: Any) -> dict[str, Any]:
    """The model's shapes a plan depends on: its matrices and its attention."""
    shapes: dict[str, int] = {}
    for _, w in weight_matrices(model):
        name = "x".join(map(str, w.shape))
        shapes[name] = shapes.get(name, 0) + 1
    n_kv_head, head_dim = attention_shape(model)
    return {
        "architecture": getattr(model, "architecture", type(model).__name__),
        "matrices": shapes,
        "n_layer": model.n_layer,
        "n_head": model.n_head,
        "n_kv_head": n_kv_head,
        "head_dim": head_dim,
    }


def attention_shape(model: Any) -> tuple[int, int]:
    """(kv heads, head dimension) of the model's attention."""
    n_kv_head = getattr(model, "n_kv_head", model.n_head)
    head_dim = getattr(model, "head_dim", model.n_embd // model.n_head)
    return n_kv_head, head_dim


def weight_matrices(model: Any) -> list[tuple[str, Any]]:
    """(flat name, matrix) of the matrices a decode step multiplies by (`x @ w` for each), in
    the order it does: the blocks' by layer, then the output projection."""

    def step_order(name: str) -> tuple[int, int]:
        parts = name.split(".")
        return (0, int(parts[1])) if parts[0] == "blocks" else (1, 0)

    flat = flatten_params(model.params)
    named = [(n, w) for n, w in flat.items() if isinstance(w, HELD)]
    return sorted(named, key=lambda item: step_order(item[0]))  # stable within a layer


def plan_key(model: Any) -> dict[str, Any]:
    return {"machine": machine_key(), "model": model_key(model)}


def key_digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
