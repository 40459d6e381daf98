"""What a model name means, decided in one place: a catalog name or alias, a path (a model
directory, a checkpoint directory, a .gguf file), a model in Ollama's store (`llama3.2:1b`), a
Hugging Face repo id ORG/NAME, or the URL of an OpenAI-compatible server. Loading, the
backends, the playground and the front ends ask here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from gpt_tui.errors import GptTuiError, ModelFileError, UnknownModelError
from gpt_tui.models.catalog import ModelSpec, resolve
from gpt_tui.models.hf.hub_cache import is_repo_id
from gpt_tui.models.stores import ollama

DEFAULT_MODEL = "smollm2"  # bundled: works offline and on the first launch


def is_remote(name: str) -> bool:
    """A URL of an OpenAI-compatible server (http://HOST:PORT/v1, optionally #MODEL)."""
    return name.strip().lower().startswith(("http://", "https://"))


def _is_url(name: str) -> bool:
    """Any URL, a server's or not: never a catalog name, a repo id or a path."""
    return "://" in name


def _explicit_path(text: str) -> bool:
    """Written as a path (`./124M`, `~/models/x`, `/abs`): a path even where a catalog name
    or a repo id is spelled the same."""
    return text.startswith(("~", ".", os.sep)) or (
        os.altsep is not None and text.startswith(os.altsep)
    )


@dataclass(frozen=True)
class ModelRef:
    """What a model name refers to: `describe`'s answer."""

    kind: Literal["catalog", "hf", "path", "store"]
    name: str  # the catalog's own name ("124M"), the repo id ("ORG/NAME"), the path as given,
    # or (kind "store") Ollama's name as given ("llama3.2:1b")
    spec: ModelSpec | None = None  # kind "catalog"
    path: Path | None = None  # kind "path": a model directory, a checkpoint dir or a .gguf;
    # kind "store": the GGUF file


def describe(name_or_path: str | Path) -> ModelRef:
    """Decide what `name_or_path` names, the one place that does: a catalog name or alias
    ("gpt2-xl"), else an existing path (a directory or a .gguf file; `./124M` forces a path
    over a same-named catalog entry), else a model in Ollama's store ("llama3.2:1b"), else a
    Hugging Face repo id ("ORG/NAME"), else an UnknownModelError listing what is known. Never
    touches the network."""
    if isinstance(name_or_path, Path):
        return ModelRef("path", str(name_or_path), path=_existing(name_or_path.expanduser()))
    text = str(name_or_path).strip()
    explicit_path = _explicit_path(text)
    if not explicit_path:
        try:
            return ModelRef("catalog", resolve(text).name, spec=resolve(text))
        except UnknownModelError:
            pass
    path = Path(text).expanduser()
    if explicit_path or path.exists() or text.lower().endswith(".gguf"):
        return ModelRef("path", text, path=_existing(path))
    try:
        blob = ollama.find(text)
    except ValueError as exc:
        raise ModelFileError(f"Ollama's {text}: {exc}") from exc
    if blob is not None:
        return ModelRef("store", text, path=blob)
    if is_repo_id(text):
        return ModelRef("hf", text)
    if os.sep in text or (os.altsep is not None and os.altsep in text):
        raise ModelFileError(f"{path} does not exist (and it is not a Hugging Face ORG/NAME)")
    resolve(text)  # raises the catalog's "no model ...; known: ..." message
    raise AssertionError("unreachable")


def _existing(path: Path) -> Path:
    if not path.exists():
        raise ModelFileError(f"{path} does not exist")
    return path


def model_setting(name: str) -> str:
    """How a model is remembered: a catalog name, repo id or URL as is, a path made absolute."""
    if _is_url(name):
        # A server's URL, without credentials written into it (user:password@host).
        parts = urlsplit(name.strip())
        return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    if not is_path(name):
        return name
    return str(Path(name).expanduser().resolve())


def is_path(name: str) -> bool:
    """Whether a model name is a file or directory (else a catalog name, a repo id or a URL)."""
    if _is_url(name):
        return False
    try:
        return describe(name).kind == "path"
    except GptTuiError:  # a path that does not exist (yet), or an unknown name: by its look
        return _explicit_path(name) or "/" in name or "\\" in name or name.endswith(".gguf")


def same_model(a: str | None, b: str) -> bool:
    return a is not None and model_setting(a) == model_setting(b)
