"""Whether a model is here: ready without a network (`is_cached`, `status`), what getting it
ready would take (`spec_of`), and which model to open when none is named (`model_to_open`).
Reads the caches only; never downloads or converts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gpt_tui.errors import GptTuiError
from gpt_tui.models.cache import checkpoint_path, is_converted, model_path
from gpt_tui.models.catalog import ModelSpec, hub_spec, resolve
from gpt_tui.models.conversion import gpt2_source
from gpt_tui.models.hf_models import hf_models, hf_status
from gpt_tui.models.names import DEFAULT_MODEL, describe


def is_cached(name: str) -> bool:
    """Ready to load without a network: converted in the cache, bundled, or (a Hugging Face
    repo id) complete in the Hugging Face cache."""
    ref = describe(name)
    if ref.kind == "hf":
        return hf_status(ref.name) == "cached"
    if ref.kind in ("path", "store"):
        return True
    spec = resolve(name)
    return spec.bundled or is_converted(model_path(spec.name))


def status(name: str) -> str:
    """One of "bundled", "cached", "partial" (a download to resume) or "not downloaded"; for a
    Hugging Face repo id, its state in the Hugging Face cache; "here" for a model in another
    tool's store."""
    ref = describe(name)
    if ref.kind == "hf":
        return hf_status(ref.name)
    if ref.kind == "store":
        return "here"
    spec = resolve(name)
    if spec.bundled:
        return "bundled"
    if is_converted(model_path(spec.name)):
        return "cached"
    if checkpoint_path(spec.name).exists():
        return "partial"
    return "not downloaded"


def spec_of(name: str) -> ModelSpec | None:
    """The spec to show before getting `name` ready (a catalog entry, or a Hugging Face repo
    with what the cache knows of it), None for a path; errors as `describe`."""
    ref = describe(name)
    if ref.kind == "catalog":
        assert ref.spec is not None
        if ref.spec.kind == "gpt2" and gpt2_source(ref.spec) == "hub":
            return dataclasses.replace(ref.spec, source="the Hugging Face Hub")
        return ref.spec
    if ref.kind in ("path", "store"):
        return None
    known = {m.repo_id: m for m in hf_models()}.get(ref.name)
    if known is None:
        return hub_spec(ref.name)
    return hub_spec(ref.name, known.n_params, known.size_bytes)


def model_to_open(last_used: str | None) -> str:
    """The model to use when none is named: the last one used (the settings say which) if it
    loads without a network (cached, bundled, or a path that exists), else the bundled smollm2."""
    last = last_used
    if last:
        try:
            if Path(last).expanduser().exists() or is_cached(last):
                return last
        except GptTuiError:
            pass  # a name an older catalog knew: fall back to the default
    return DEFAULT_MODEL
