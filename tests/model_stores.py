"""Other tools' model stores in their real layouts, built in temp dirs: Ollama's manifests and
content-addressed blobs, LM Studio's publisher/repo folders, llama.cpp's flat cache."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

MODEL_LAYER = "application/vnd.ollama.image.model"


@dataclass(frozen=True)
class Stores:
    home: Path  # HOME: LM Studio's ~/.lmstudio/models is under it
    ollama: Path  # OLLAMA_MODELS
    llama_cache: Path  # LLAMA_CACHE

    @property
    def lm_studio(self) -> Path:
        return self.home / ".lmstudio" / "models"


def blob(store: Path, data: bytes) -> str:
    """Put `data` into Ollama's blobs as Ollama does (blobs/sha256-HEX); its digest."""
    digest = hashlib.sha256(data).hexdigest()
    (store / "blobs").mkdir(parents=True, exist_ok=True)
    (store / "blobs" / f"sha256-{digest}").write_bytes(data)
    return f"sha256:{digest}"


def add_ollama_model(
    store: Path, name: str, gguf: Path | None, registry_path: str | None = None
) -> Path:
    """An Ollama model `name` ("tiny:q4_0") as `ollama pull` leaves it: the GGUF, a template and
    a config as blobs, and the manifest naming them; `gguf` None names a blob never written
    (a pull that stopped). Returns the manifest."""
    model, _, tag = name.partition(":")
    template = blob(store, b"{{ .Prompt }}")
    config = blob(store, json.dumps({"model_format": "gguf"}).encode())
    if gguf is not None:
        model_digest = blob(store, gguf.read_bytes())
        size = gguf.stat().st_size
    else:
        model_digest, size = "sha256:" + "0" * 64, 1234
    layers = [
        {"mediaType": MODEL_LAYER, "digest": model_digest, "size": size},
        {"mediaType": "application/vnd.ollama.image.template", "digest": template, "size": 13},
    ]
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": config, "size": 23},
        "layers": layers,
    }  # fmt: skip
    path = store / "manifests" / (registry_path or f"registry.ollama.ai/library/{model}") / tag
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest))
    return path


def add_file(root: Path, relative: str, gguf: Path) -> Path:
    """A GGUF copied to `root/relative` (LM Studio's PUBLISHER/REPO/FILE.gguf, or llama.cpp's
    flat cache)."""
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(gguf, target)
    return target
