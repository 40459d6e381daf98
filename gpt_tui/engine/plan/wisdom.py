"""Wisdom: plans kept in the cache directory, one JSON file per key, written atomically;
a file that is unreadable or was measured for another key is refused with the reason."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gpt_tui.engine.cores import Settings, Split
from gpt_tui.engine.layout import LAYOUTS
from gpt_tui.engine.plan.keys import key_digest
from gpt_tui.engine.plan.records import Plan, Timing
from gpt_tui.locations import cache_root


def wisdom_dir() -> Path:

    return cache_root() / "plans"


def plan_path(key: dict[str, Any], directory: Path | None = None) -> Path:
    model = key["model"]
    return (directory or wisdom_dir()) / f"{model['architecture']}-{key_digest(key)}.json"


def save(plan: Plan, path: Path) -> None:
    """Write the plan atomically (a temp file renamed); raises OSError when it cannot."""
    data = {
        "key": plan.key,
        "settings": _settings_to_json(plan.settings),
        "timings": [asdict(t) for t in plan.timings],
        "measured_s": plan.measured_s,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def load(path: Path, key: dict[str, Any]) -> Plan:
    """The plan at `path`, if it was measured for `key`; ValueError saying why not."""
    try:
        data = json.loads(path.read_text())
        stored_key = data["key"]
        settings = _settings_from_json(data["settings"])
        timings = tuple(Timing(**t) for t in data.get("timings", []))
        measured_s = float(data.get("measured_s", 0.0))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"unreadable ({type(exc).__name__}: {exc})") from exc
    if stored_key != key:
        differ = sorted(
            f"{part}.{name}"
            for part in ("machine", "model")
            for name in set(key.get(part, {})) | set(stored_key.get(part, {}))
            if key.get(part, {}).get(name) != stored_key.get(part, {}).get(name)
        )
        raise ValueError(f"measured for another {', '.join(differ) or 'key'}")
    return Plan(settings, key, timings, measured_s, source=f"loaded from {path}")


def _settings_to_json(s: Settings) -> dict[str, Any]:
    return {
        "decode": {str(rows): asdict(split) for rows, split in s.decode.items()},
        "prefill": asdict(s.prefill),
        "attention_min_keys": s.attention_min_keys,
        "attention_parts": s.attention_parts,
        "query_tile": s.query_tile,
        "prefill_chunk": s.prefill_chunk,
        "prefill_attention_parts": s.prefill_attention_parts,
        "layout": s.layout,
    }


def _settings_from_json(data: dict[str, Any]) -> Settings:
    def split(d: dict[str, Any]) -> Split:
        s = Split(int(d["blas_threads"]), int(d["parts"]), int(d["min_bytes"]),
                  bool(d["block_first"]))  # fmt: skip
        if min(s.blas_threads, s.parts) < 1 or s.min_bytes < 0:
            raise ValueError(f"not a split: {d}")
        return s

    decode = {int(rows): split(d) for rows, d in data["decode"].items()}
    if 1 not in decode:
        raise ValueError("no decode split for one row")
    min_keys = data["attention_min_keys"]
    settings = Settings(
        decode=decode,
        prefill=split(data["prefill"]),
        attention_min_keys=None if min_keys is None else int(min_keys),
        attention_parts=int(data["attention_parts"]),
        query_tile=int(data["query_tile"]),
        prefill_chunk=int(data["prefill_chunk"]),
        prefill_attention_parts=int(data["prefill_attention_parts"]),
        layout=str(data["layout"]),
    )
    counts = (settings.query_tile, settings.prefill_chunk, settings.attention_parts,
              settings.prefill_attention_parts)  # fmt: skip
    if min(counts) < 1:
        raise ValueError("query_tile, prefill_chunk and the attention parts must be positive")
    if settings.layout not in LAYOUTS:
        raise ValueError(f"no weight layout {settings.layout!r}")
    return settings
