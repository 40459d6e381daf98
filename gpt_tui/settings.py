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
from gpt_tui.errors import InputError, SpeculationError
from gpt_tui.locations import config_dir, storage_error
from gpt_tui.models.availability import model_to_open
from gpt_tui.models.recommended import recommended_sampling

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


# --- presets: sampling settings saved under a name ----------------------------------------------

PRESETS_FILE = "presets.toml"
#: the settings a preset holds: every sampling setting but the seed and the length (a preset is
#: a way of sampling; the seed and how many tokens belong to one run)
PRESET_EXCLUDED = ("seed", "max_tokens")
GREEDY = "greedy"
DEFAULT = "default"
MODEL = "model"
BUILTIN_PRESETS: dict[str, str] = {
    GREEDY: "temperature 0: always the likeliest token",
    DEFAULT: "every sampler off (temperature 1): the model's own distribution",
    MODEL: "the loaded model's recommended settings, where it ships them "
    "(generation_config.json, or a GGUF's general.sampling.* metadata)",
}


@dataclass(frozen=True)
class Preset:
    """Sampling settings under a name: the ones that differ from "off" (`changes`), applied on
    top of the defaults. `source`: where they come from (built in, saved, the model's files)."""

    name: str
    changes: dict[str, Any]
    source: str

    def sampling(self, base: SamplingParams | None = None) -> SamplingParams:
        """The preset applied on the defaults (or on `base`, keeping its seed and stop)."""
        return (base or SamplingParams()).replace(**self.changes)


def presets_path() -> Path:
    return config_dir() / PRESETS_FILE


def preset_changes(params: SamplingParams) -> dict[str, Any]:
    """The settings of `params` a preset keeps: those that differ from the defaults."""
    defaults = SamplingParams()
    return {
        f.name: getattr(params, f.name)
        for f in dataclasses.fields(SamplingParams)
        if f.name not in PRESET_EXCLUDED and getattr(params, f.name) != getattr(defaults, f.name)
    }


def load_presets(path: Path | None = None) -> tuple[dict[str, Preset], list[str]]:
    """The saved presets by name, and the problems found (a preset with a bad value is skipped
    whole, with a sentence saying why: half a preset would sample differently than saved)."""
    path = path or presets_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, []
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return {}, [f"ignored {path} (unreadable: {exc})"]
    presets: dict[str, Preset] = {}
    problems: list[str] = []
    for name, table in data.items():
        if not isinstance(table, dict):
            problems.append(f"ignored preset {name!r} in {path}: not a table of settings")
            continue
        try:
            params = SamplingParams().replace(**table)
        except (ValueError, TypeError) as exc:
            problems.append(f"ignored preset {name!r} in {path}: {exc}")
            continue
        presets[name] = Preset(name, preset_changes(params), f"saved in {path}")
    return presets, problems


def check_preset_name(name: str) -> str:
    """A name a preset can be saved under (InputError otherwise)."""
    name = name.strip()
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise InputError(f"a preset's name is letters, digits, '-', '_' and '.', not {name!r}")
    if name in BUILTIN_PRESETS:
        raise InputError(f"{name!r} is a built-in preset; save under another name")
    return name


def save_preset(name: str, params: SamplingParams, path: Path | None = None) -> Path:
    """Save (or replace) the preset `name` with the settings of `params`; atomic, as settings."""
    import tomli_w  # only needed when writing

    name = check_preset_name(name)
    path = path or presets_path()
    presets, _ = load_presets(path)
    presets[name] = Preset(name, preset_changes(params), "")
    return _write_presets(presets, path, tomli_w.dumps)


def delete_preset(name: str, path: Path | None = None) -> Path:
    """Remove a saved preset (InputError when there is none of that name)."""
    import tomli_w  # only needed when writing

    path = path or presets_path()
    presets, _ = load_presets(path)
    if name not in presets:
        raise InputError(_unknown_preset(name, presets))
    del presets[name]
    return _write_presets(presets, path, tomli_w.dumps)


def find_preset(name: str, model_dir: Path | None, path: Path | None = None) -> Preset:
    """The preset `name`: built in (greedy, default, model) or saved; InputError for a name
    that is neither, or for "model" when the model ships no recommendation."""
    if name == GREEDY:
        return Preset(GREEDY, {"temperature": 0.0}, "built in")
    if name == DEFAULT:
        return Preset(DEFAULT, {}, "built in")
    if name == MODEL:
        recommended = recommended_sampling(model_dir)
        if recommended is None:
            raise InputError(
                "the preset 'model' needs the model's recommended settings, and this model "
                "ships none (no generation_config.json with sampling settings, no GGUF "
                "general.sampling.* metadata)"
            )
        try:
            SamplingParams().replace(**recommended.settings)
        except (ValueError, TypeError) as exc:
            raise InputError(f"the model's recommended settings do not validate: {exc}") from None
        return Preset(MODEL, recommended.settings, f"the model's {recommended.source}")
    presets, _ = load_presets(path)
    if name not in presets:
        raise InputError(_unknown_preset(name, presets))
    return presets[name]


def _unknown_preset(name: str, presets: dict[str, Preset]) -> str:
    known = ", ".join([*BUILTIN_PRESETS, *sorted(presets)])
    return f"no preset {name!r}; known: {known} (`gpt-tui presets` lists them)"


def _write_presets(presets: dict[str, Preset], path: Path, dumps: Any) -> Path:
    data = {
        name: {k: list(v) if isinstance(v, tuple) else v for k, v in p.changes.items()}
        for name, p in sorted(presets.items())
    }
    tmp = path.with_suffix(".toml.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(dumps(data), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise storage_error(path.parent, exc) from exc
    return path
