"""Ollama's model store: `OLLAMA_MODELS`, else `~/.ollama/models`.

    manifests/registry.ollama.ai/library/llama3.2/1b     a manifest: JSON naming layers by digest
    manifests/registry.ollama.ai/USER/NAME/TAG           a user's model (USER/NAME:TAG)
    manifests/hf.co/ORG/REPO/TAG                         pulled from Hugging Face
    blobs/sha256-HEX                                     the layers, the GGUF among them

The GGUF is the layer of media type `application/vnd.ollama.image.model`. Names are Ollama's own
(`ollama list`): the registry and `library/` left out where they are the defaults, `:TAG` kept.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from gpt_tui.models.stores.found import Found, StoreFile, walk

STORE = "Ollama"
MODEL_LAYER = "application/vnd.ollama.image.model"
DEFAULT_REGISTRY = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
MAX_MANIFEST_BYTES = 1 << 20  # a manifest is a few hundred bytes; more is not one


def root() -> Path:
    if os.environ.get("OLLAMA_MODELS"):
        return Path(os.environ["OLLAMA_MODELS"]).expanduser()
    return Path.home() / ".ollama" / "models"


def ollama_files() -> Found:
    """Every model in the store by its Ollama name; a manifest that cannot be read, or that
    names a blob the store lacks (a pull that stopped), is a notice."""
    found = Found()
    manifests = root() / "manifests"
    if not manifests.is_dir():
        return found
    for directory, files in walk(STORE, manifests, found):
        for file in files:
            manifest = directory / file
            parts = manifest.relative_to(manifests).parts
            if len(parts) < 3 or file.startswith("."):
                continue  # not REGISTRY/.../NAME/TAG: something else's file
            name = ollama_name(parts)
            try:
                found.files.append(StoreFile(STORE, name, model_blob(manifest), name))
            except ValueError as exc:
                found.notices.append(f"{STORE}: skipped {name}: {exc}")
    return found


def find(name: str) -> Path | None:
    """The GGUF blob of Ollama model `name` ("llama3.2:1b", "llama3.2" meaning
    "llama3.2:latest", "USER/NAME:TAG", "hf.co/ORG/REPO:TAG"), None when the store lacks it;
    a ValueError when its manifest is there but broken."""
    model, _, tag = name.strip().partition(":")
    parts = [p for p in model.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts) or "/" in tag or tag in (".", ".."):
        return None
    if len(parts) == 1:
        parts.insert(0, DEFAULT_NAMESPACE)
    if len(parts) == 2:
        parts.insert(0, DEFAULT_REGISTRY)
    manifest = root() / "manifests" / Path(*parts) / (tag or "latest")
    if not manifest.is_file():
        return None
    return model_blob(manifest)


def ollama_name(parts: tuple[str, ...]) -> str:
    """A manifest's path under `manifests/` (REGISTRY, NAMESPACE..., NAME, TAG) -> its name."""
    *path, tag = parts
    if path[0] == DEFAULT_REGISTRY:
        path = path[1:]
        if len(path) == 2 and path[0] == DEFAULT_NAMESPACE:
            path = path[1:]
    return f"{'/'.join(path)}:{tag}"


def model_blob(manifest: Path) -> Path:
    """The GGUF blob a manifest names; a ValueError saying why there is none."""
    try:
        if manifest.stat().st_size > MAX_MANIFEST_BYTES:
            raise ValueError(f"{manifest} is too large to be a manifest")
        layers = json.loads(manifest.read_text(encoding="utf-8")).get("layers") or []
    except OSError as exc:
        raise ValueError(f"cannot read {manifest}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise ValueError(f"{manifest} is not a manifest ({exc})") from exc
    digests = [
        layer.get("digest") for layer in layers
        if isinstance(layer, dict) and layer.get("mediaType") == MODEL_LAYER
    ]  # fmt: skip
    if not digests or not isinstance(digests[0], str):
        raise ValueError(f"{manifest} names no model layer ({MODEL_LAYER})")
    # Ollama writes blobs as sha256-HEX (the ':' of the digest cannot be in a Windows name).
    blob = root() / "blobs" / digests[0].replace(":", "-")
    if not blob.is_file():
        raise ValueError(f"its manifest names the blob {blob.name[:19]}…, which is missing")
    return blob
