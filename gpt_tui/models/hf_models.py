"""The models in the Hugging Face cache as gpt-tui sees them, for `gpt-tui models` and the app's
picker: each repo's architecture and size, whether gpt-tui runs it and has converted it, and its
state. Reads only headers and directories, never the network. Finding the cache and reading its
layout is `hf/hub_cache.py`'s; a checkpoint's contents are `hf/checkpoint.py`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gpt_tui.models.cache import hf_model_path, is_converted
from gpt_tui.models.hf.checkpoint import is_complete, summarize
from gpt_tui.models.hf.hub_cache import cached_repos, cached_snapshot, repo_dir


@dataclass(frozen=True)
class HFModel:
    """A model in the Hugging Face cache, for `gpt-tui models` and the app's picker."""

    repo_id: str
    snapshot: Path
    hf_architecture: str  # "LlamaForCausalLM"
    n_params: int
    size_bytes: int  # its safetensors files
    supported: bool
    problem: str  # why gpt-tui cannot run it, when it cannot
    converted: bool  # a converted copy is ready: loading reads it at once


def hf_models() -> list[HFModel]:
    """Every model repo in the Hugging Face cache, runnable or not, by repo id; reads only
    headers (fast), never the network."""
    models = []
    for repo in cached_repos():
        summary = summarize(repo.snapshot, repo.repo_id)
        models.append(
            HFModel(
                repo.repo_id,
                repo.snapshot,
                summary.hf_architecture,
                summary.n_params,
                summary.size_bytes,
                summary.supported,
                summary.problem,
                is_converted(hf_model_path(repo.repo_id)),
            )
        )
    return models


def hf_status(repo_id: str) -> str:
    """ "cached" (complete in the Hugging Face cache), "partial" (a fetch to resume, or only our
    converted copy left) or "not downloaded"."""
    snapshot = cached_snapshot(repo_id)
    if snapshot is not None and is_complete(snapshot):
        return "cached"
    # refs/main is written last: a fetch that stopped has a snapshot directory and no ref yet.
    if (repo_dir(repo_id) / "snapshots").is_dir() or is_converted(hf_model_path(repo_id)):
        return "partial"
    return "not downloaded"
