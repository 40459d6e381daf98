"""The GGUF models in other tools' stores, summed up for `gpt-tui models` and the picker: each
under the name `-m` opens it by, with what its header says (`gguf_summary.py`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gpt_tui.models.gguf_summary import GGUFSummary, summarize_gguf
from gpt_tui.models.stores.found import Found, StoreFile
from gpt_tui.models.stores.llama_cpp_cache import llama_cpp_files
from gpt_tui.models.stores.lm_studio import lm_studio_files
from gpt_tui.models.stores.ollama import ollama_files

READERS: tuple[Callable[[], Found], ...] = (ollama_files, lm_studio_files, llama_cpp_files)


@dataclass(frozen=True)
class StoreModel:
    store: str  # "Ollama", "LM Studio", "llama.cpp"
    name: str  # what `-m` takes
    label: str  # what a narrow list shows (Ollama's name, or the path inside the store)
    summary: GGUFSummary


@dataclass(frozen=True)
class StoreListing:
    models: list[StoreModel] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # one line per store or entry skipped


def store_models() -> StoreListing:
    """Every GGUF in Ollama's, LM Studio's and llama.cpp's stores; never raises for a store's
    sake (what cannot be read is a notice, a file gpt-tui cannot run is listed with why)."""
    found = Found()
    for read in READERS:
        try:
            found.add(read())
        except OSError as exc:  # a store's root itself unreadable, or gone mid-walk
            found.notices.append(f"skipped {exc.filename}: {exc.strerror or exc}")
    models = []
    for file in found.files:
        try:
            summary = _summary(file)
            models.append(StoreModel(file.store, file.name, file.label or file.name, summary))
        except OSError as exc:
            found.notices.append(f"{file.store}: skipped {file.name}: {exc.strerror or exc}")
    return StoreListing(models, found.notices)


def _summary(file: StoreFile) -> GGUFSummary:
    stat = file.path.stat()
    return _summary_of(file.path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _summary_of(path: Path, size: int, mtime_ns: int) -> GGUFSummary:
    """Summaries are kept per file version: the picker lists the stores each time it opens."""
    return summarize_gguf(path)
