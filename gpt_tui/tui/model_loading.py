"""What the app asks before it loads a model: a catalog model not yet here is a download, and
the user agrees to it first (how much, from where, how much memory it needs to run)."""

from __future__ import annotations

from gpt_tui.display import human_bytes
from gpt_tui.errors import GptTuiError
from gpt_tui.models.availability import spec_of
from gpt_tui.models.catalog import ModelSpec
from gpt_tui.models.names import is_remote
from gpt_tui.tui.screens.model_picker import model_status


def download_question(name: str) -> tuple[str, str, str] | None:
    """(title, question, verb) to confirm before loading `name`; None: it loads without one."""
    spec = catalog_spec(name)
    status = model_status(spec.name) if spec is not None else "path"
    if spec is None or status in ("bundled", "cached"):
        return None
    verb = "Resume downloading" if status == "partial" else "Download"
    question = (
        f"{verb} {spec.name}? About {human_bytes(spec.download_bytes)} from {spec.source}, "
        f"converted once and cached. It needs about {human_bytes(spec.memory_bytes)} "
        "of memory to run.\n\nThe download can be cancelled (escape) and resumed later."
    )
    return f"{verb} {spec.name}", question, verb


def catalog_spec(name: str) -> ModelSpec | None:
    """The catalog entry or Hugging Face repo `name` refers to, or None for a path (or a
    server)."""
    if is_remote(name):
        return None
    try:
        return spec_of(name)  # models.names decides what a name means
    except GptTuiError:
        return None
