"""The local Hugging Face hub cache, the one transformers, huggingface_hub and other tools share.

Where it is, as huggingface_hub decides: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
`$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`. Read at every call (not at
import, as huggingface_hub's constants are), so a changed environment is seen.

Its layout, one directory per repo:

    models--ORG--NAME/
        refs/main                 the commit the branch "main" pointed at when last fetched
        snapshots/COMMIT/FILE     symlinks into blobs/, one directory per commit
        blobs/HASH                the files' contents

Listing walks these directories itself, with no import of huggingface_hub (slow to import) and
no network: a model picker opens in milliseconds.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
"""ORG/NAME as the Hub spells repo ids (no "..", no leading "." or "~": those are paths)."""


def hub_cache_dir() -> Path:
    explicit = os.environ.get("HF_HUB_CACHE", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("HF_HOME", "").strip()
    if home:
        return Path(home).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def is_repo_id(text: str) -> bool:
    return bool(REPO_ID.match(text)) and ".." not in text


def repo_dir(repo_id: str, cache: Path | None = None) -> Path:
    org, name = repo_id.split("/")
    return (cache or hub_cache_dir()) / f"models--{org}--{name}"


@dataclass(frozen=True)
class CachedRepo:
    repo_id: str
    commit: str
    snapshot: Path  # the directory to read the model from


def cached_snapshot(repo_id: str, revision: str = "main", cache: Path | None = None) -> Path | None:
    """The snapshot of `repo_id` at `revision` (a branch, a tag or a commit) in the cache, or
    None. Whether it holds every file a model needs is for the caller to check."""
    root = repo_dir(repo_id, cache)
    commit = revision
    ref = root / "refs" / revision
    if ref.is_file():
        try:
            commit = ref.read_text().strip()
        except OSError:
            return None
    snapshot = root / "snapshots" / commit
    return snapshot if snapshot.is_dir() else None


def cached_repos(cache: Path | None = None) -> list[CachedRepo]:
    """Every model repo in the cache with a snapshot (main's, else the newest), sorted by id."""
    cache = cache or hub_cache_dir()
    try:
        entries = sorted(cache.iterdir()) if cache.is_dir() else []
    except OSError:
        return []
    found = []
    for entry in entries:
        if not entry.name.startswith("models--") or not entry.is_dir():
            continue
        parts = entry.name.removeprefix("models--").split("--", 1)
        if len(parts) != 2:
            continue  # a repo without an org ("models--gpt2"): an old-style id
        repo_id = "/".join(parts)
        snapshot = cached_snapshot(repo_id, "main", cache) or _newest_snapshot(entry)
        if snapshot is not None:
            found.append(CachedRepo(repo_id, snapshot.name, snapshot))
    return found


def _newest_snapshot(repo: Path) -> Path | None:
    try:
        snapshots = [p for p in (repo / "snapshots").iterdir() if p.is_dir()]
    except OSError:
        return None
    return max(snapshots, key=lambda p: p.stat().st_mtime, default=None)
