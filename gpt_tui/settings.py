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

from gpt_tui import speculation
from gpt_tui.engine.sampling import SamplingParams
from gpt_tui.errors import StorageError

SETTINGS_FILE = "settings.toml"


@dataclass(frozen=True)
class UserSettings:
    model: str | None = None  # the most recently used model
    sampling: SamplingParams = field(default_factory=SamplingParams)
    n_top: int = 10  # alternatives shown per token
    speculative: str = speculation.DEFAULT  # off, lookup, or a draft model's name or path
    ui: dict[str, Any] = field(default_factory=dict)  # the app's own view preferences

    def replace(self, **changes: Any) -> UserSettings:
        return dataclasses.replace(self, **changes)


def settings_path() -> Path:
    from gpt_tui.models.paths import config_dir

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
    speculative = data.get("speculative", speculation.DEFAULT)
    try:
        speculative = speculation.check_choice(speculative)
    except (speculation.SpeculationError, AttributeError):
        problems.append(f"ignored speculative in {path}: must be off, lookup or a model")
        speculative = speculation.DEFAULT
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
        tmp.write_text(tomli_w.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise StorageError(
            f"cannot save settings to {path}: {exc.strerror or exc}; set GPT_TUI_HOME to a "
            "writable directory"
        ) from exc
    return path
