"""What a store reader returns: the GGUF files found, each under the name that opens it, and a
one-line notice per thing skipped; and the bounded walk of a folder of GGUF files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: A store is walked until this many directory entries have been seen: a home directory
#: mistaken for a store, or a store of thousands of files, must not hold up the picker.
MAX_ENTRIES = 20_000


@dataclass(frozen=True)
class StoreFile:
    store: str  # "Ollama", "LM Studio", "llama.cpp"
    name: str  # what `-m` takes: an Ollama name ("llama3.2:1b") or the file's path
    path: Path  # the GGUF file
    label: str = ""  # shorter, where the store's name for it is: PUBLISHER/REPO/FILE.gguf


@dataclass
class Found:
    files: list[StoreFile] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def add(self, other: Found) -> None:
        self.files += other.files
        self.notices += other.notices


def home_path(path: Path) -> str:
    """`path` as a user would type it: under the home directory as `~/...`."""
    home = Path.home()
    try:
        return f"~{os.sep}{path.relative_to(home)}"
    except ValueError:
        return str(path)


def gguf_files(store: str, root: Path) -> Found:
    """Every `*.gguf` under `root` (LM Studio's publisher/repo/file.gguf, llama.cpp's flat
    cache), named by path; a missing root is no store, an unreadable or enormous one a notice.
    A multi-part GGUF's later parts (`-00002-of-00003.gguf`) are not models of their own."""
    found = Found()
    if not root.is_dir():
        return found
    for directory, files in walk(store, root, found):
        for name in files:
            if name.lower().endswith(".gguf") and not _later_part(name):
                path = directory / name
                label = str(path.relative_to(root))
                found.files.append(StoreFile(store, home_path(path), path, label))
    return found


def walk(store: str, root: Path, found: Found) -> Iterator[tuple[Path, list[str]]]:
    """Each directory under `root` with its files, in order, for at most MAX_ENTRIES entries;
    what cannot be read, or is past the limit, goes into `found`'s notices."""

    def refused(exc: OSError) -> None:
        found.notices.append(f"{store}: skipped {exc.filename}: {exc.strerror}")

    seen = 0
    for directory, subdirs, files in os.walk(root, onerror=refused):
        seen += len(subdirs) + len(files)
        if seen > MAX_ENTRIES:
            found.notices.append(
                f"{store}: {home_path(root)} holds over {MAX_ENTRIES:,} files; "
                "only the first were looked at"
            )
            return
        subdirs.sort()
        yield Path(directory), sorted(files)


def _later_part(name: str) -> bool:
    stem = name[: -len(".gguf")]
    part, _, total = stem.rpartition("-of-")
    return bool(total.isdigit() and part[-5:].isdigit() and int(part[-5:]) > 1)
