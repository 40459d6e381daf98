from __future__ import annotations

from gpt_tui.engine import SamplingParams
from gpt_tui.settings import UserSettings, load_settings, save_settings


def test_round_trip(tmp_path) -> None:
    path = tmp_path / "settings.toml"
    settings = UserSettings(
        model="124M",
        sampling=SamplingParams(temperature=0.7, top_k=40, stop=("\n\n",), seed=5),
        n_top=20,
        speculative="124M",
        ui={"colour": "rank"},
    )
    save_settings(settings, path)
    loaded, problems = load_settings(path)
    assert loaded == settings and problems == []


def test_missing_file_gives_defaults(tmp_path) -> None:
    assert load_settings(tmp_path / "none.toml") == (UserSettings(), [])


def test_damaged_file_and_bad_values_fall_back_with_a_message(tmp_path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("this is = = not toml")
    settings, problems = load_settings(path)
    assert settings == UserSettings() and "unreadable" in problems[0]

    path.write_text('model = "355M"\nn_top = 0\n[sampling]\ntemperature = -1\ntop_p = 0.9\n')
    settings, problems = load_settings(path)
    assert settings.model == "355M" and settings.sampling.top_p == 0.9
    assert settings.sampling.temperature == 1.0 and settings.n_top == 10
    assert any("temperature must be in [0, 2]" in p for p in problems)
    assert any("n_top" in p for p in problems)


def test_speculative_defaults_to_lookup_and_a_bad_value_falls_back(tmp_path) -> None:
    assert UserSettings().speculative == "lookup"
    path = tmp_path / "settings.toml"
    path.write_text('speculative = "  "\n')
    settings, problems = load_settings(path)
    assert settings.speculative == "lookup" and "speculative" in problems[0]
    path.write_text("speculative = 3\n")
    assert load_settings(path)[0].speculative == "lookup"
    path.write_text('speculative = "OFF"\n')
    assert load_settings(path) == (UserSettings(speculative="off"), [])
