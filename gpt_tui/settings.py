"""The user's settings that persist between runs: a TOML file in the config directory.

A damaged or hand-edited file never stops the app: values that do not validate fall back to
their defaults, and `load_settings` says which, so the caller can tell the user.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpt_tui.engine.sampling import SamplingParams
from gpt_tui.errors import SpeculationError
from gpt_tui.locations import config_dir, storage_error
from gpt_tui.models.availability import model_to_open

SETTINGS_FILE = "settings.toml"

# Speculative decoding, as a user sets it: "off" decodes plainly, "lookup" drafts by prompt lookup
# (no second model), anything else names a draft model (a catalog name or a path) with the
# target's tokenizer. Each gives the same text; only the speed differs. Loading the draft is the
# local backend's (backends/drafts.py).
SPECULATIVE_OFF = "off"
SPECULATIVE_LOOKUP = "lookup"
SPECULATIVE_DEFAULT = SPECULATIVE_LOOKUP
"""On by default: exact (the same text as plain decoding, seed for seed) and, by the measured
draft length, never slower; copying, quoting and editing become several times faster (README,
Speed)."""


def check_speculative(text: str) -> str:
    """A setting as typed (stripped; "off" and "lookup" in any case); never empty."""
    choice = text.strip()
    if not choice:
        raise SpeculationError("speculative must be off, lookup or a draft model's name or path")
    lowered = choice.lower()
    return lowered if lowered in (SPECULATIVE_OFF, SPECULATIVE_LOOKUP) else choice


@dataclass(frozen=True)
class UserSettings:
    model: str | None = None  # the most recently used model
    sampling: SamplingParams = field(default_factory=SamplingParams)
    n_top: int = 10  # alternatives shown per token
    speculative: str = SPECULATIVE_DEFAULT  # off, lookup, or a draft model's name or path
    ui: dict[str, Any] = field(default_factory=dict)  # the app's own view preferences

    def replace(self, **changes: Any) -> UserSettings:
        return dataclasses.replace(self, **changes)


def default_model_name() -> str:
    """The model to open when none is named: the last one used, if it still loads without a
    network, else the bundled one."""
    return model_to_open(load_settings()[0].model)


def settings_path() -> Path:
    return config_dir() / SETTINGS_FILE


def load_settings(path: Path | None = None) -> tuple[UserSettings, list[str]]:
    """The saved settings, and a list of problems found (each a sentence for the user)."""
    path = path or settings_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return UserSettings(), []
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return UserSettings(), [f"ignored {path} (unreadable: {exc}); using defaults"]

    problems: list[str] = []
    sampling = SamplingParams()
    for name, value in dict(data.get("sampling", {})).items():
        try:
            sampling = sampling.replace(**{name: value})
        except (ValueError, TypeError) as exc:
            problems.append(f"ignored {name} in {path}: {exc}")
    model = data.get("model")
    n_top = data.get("n_top", 10)
    if not isinstance(n_top, int) or not 1 <= n_top <= 100:
        problems.append(f"ignored n_top in {path}: must be a whole number in [1, 100]")
        n_top = 10
    speculative = data.get("speculative", SPECULATIVE_DEFAULT)
    try:
        speculative = check_speculative(speculative)
    except (SpeculationError, AttributeError):
        problems.append(f"ignored speculative in {path}: must be off, lookup or a model")
        speculative = SPECULATIVE_DEFAULT
    ui = data.get("ui", {})
    settings = UserSettings(
        model=model if isinstance(model, str) and model else None,
        sampling=sampling,
        n_top=n_top,
        speculative=speculative,
        ui=ui if isinstance(ui, dict) else {},
    )
    return settings, problems


def save_settings(settings: UserSettings, path: Path | None = None) -> Path:
    """Write atomically (temp file + rename), so a crash never leaves half a file."""
    import tomli_w  # only needed when writing

    path = path or settings_path()
    sampling = {
        f.name: list(value) if isinstance(value, tuple) else value
        for f in dataclasses.fields(SamplingParams)
        if (value := getattr(settings.sampling, f.name)) is not None
    }
    data: dict[str, Any] = {
        "n_top": settings.n_top,
        "speculative": settings.speculative,
        "sampling": sampling,
        "ui": settings.ui,
    }
    if settings.model:
        data["model"] = settings.model
    tmp = path.with_suffix(".toml.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # not made when the home was unwritable
        tmp.write_text(tomli_w.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise storage_error(path.parent, exc) from exc  # which case: read-only, full, permission
    return path
