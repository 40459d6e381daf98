from __future__ import annotations

import json

import pytest

from gpt_tui.engine import SamplingParams
from gpt_tui.engine.sampling import temperature_last
from gpt_tui.errors import InputError
from gpt_tui.models.recommended import recommended_sampling
from gpt_tui.settings import (
    UserSettings,
    find_preset,
    load_presets,
    load_settings,
    save_preset,
    save_settings,
)


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


# --- presets -------------------------------------------------------------------------------------


def test_a_preset_round_trips_without_its_seed(tmp_path) -> None:
    path = tmp_path / "presets.toml"
    params = SamplingParams(
        temperature=0.7,
        top_k=40,
        seed=9,
        logit_bias={5: -2.5},
        banned_strings=("As an AI",),
        sampler_order=temperature_last(),
    )
    save_preset("creative", params, path)
    presets, problems = load_presets(path)
    assert problems == []
    assert presets["creative"].sampling() == params.replace(seed=None)
    assert find_preset("creative", None, path).changes["top_k"] == 40


def test_a_damaged_preset_is_skipped_whole_with_a_reason(tmp_path) -> None:
    path = tmp_path / "presets.toml"
    path.write_text("[good]\ntop_p = 0.9\n[bad]\ntop_p = 0.9\ntemperature = 9\n")
    presets, problems = load_presets(path)
    assert list(presets) == ["good"]
    assert "ignored preset 'bad'" in problems[0] and "temperature must be in [0, 2]" in problems[0]


def test_builtin_presets_and_bad_names(tmp_path) -> None:
    assert find_preset("greedy", None).sampling().greedy
    assert find_preset("default", None).sampling() == SamplingParams()
    with pytest.raises(InputError, match="no preset 'nope'; known: greedy, default, model"):
        find_preset("nope", None, tmp_path / "none.toml")
    with pytest.raises(InputError, match="is a built-in preset"):
        save_preset("greedy", SamplingParams(), tmp_path / "p.toml")
    with pytest.raises(InputError, match="ships none"):
        find_preset("model", tmp_path)


def test_the_model_preset_reads_generation_config(tmp_path) -> None:
    (tmp_path / "generation_config.json").write_text(
        json.dumps(
            {
                "do_sample": True,
                "temperature": 0.6,
                "top_p": 0.95,
                "top_k": 20,
                "repetition_penalty": 1.05,
                "eos_token_id": 2,
            }
        )  # fmt: skip
    )
    preset = find_preset("model", tmp_path)
    assert preset.changes == {"temperature": 0.6, "top_k": 20, "top_p": 0.95,
                              "repetition_penalty": 1.05}  # fmt: skip
    assert preset.source == "the model's generation_config.json"
    (tmp_path / "generation_config.json").write_text('{"do_sample": false, "temperature": 0.6}')
    assert find_preset("model", tmp_path).sampling().greedy  # transformers decodes greedily
    (tmp_path / "generation_config.json").write_text('{"eos_token_id": 2}')
    assert recommended_sampling(tmp_path) is None  # no sampling settings in it


def test_the_model_preset_reads_gguf_sampling_metadata(tmp_path) -> None:
    import gguf

    path = tmp_path / "model.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_float32(gguf.Keys.General.SAMPLING_TEMP, 0.7)
    writer.add_int32(gguf.Keys.General.SAMPLING_TOP_K, 30)
    writer.add_float32(gguf.Keys.General.SAMPLING_XTC_PROBABILITY, 0.5)
    writer.add_string(gguf.Keys.General.SAMPLING_SEQUENCE, "top_k;xtc;temperature")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    model_dir = tmp_path / "converted"
    model_dir.mkdir()
    (model_dir / "source.json").write_text(json.dumps({"path": str(path)}))
    recommended = recommended_sampling(model_dir)
    assert recommended is not None and recommended.source == "GGUF general.sampling.*"
    assert recommended.settings["temperature"] == pytest.approx(0.7)
    assert recommended.settings["top_k"] == 30
    assert recommended.settings["sampler_order"] == [
        "logit_bias",
        "banned_tokens",
        "top_k",
        "xtc",
        "temperature",
    ]
    params = find_preset("model", model_dir).sampling()
    assert params.xtc_probability == 0.5 and params.sampler_order[-1] == "temperature"


def test_the_bundled_smollm2_gguf_ships_no_sampling_metadata() -> None:
    import gguf

    from gpt_tui.models.bundled import smollm2_gguf_path

    reader = gguf.GGUFReader(smollm2_gguf_path())
    assert not [k for k in reader.fields if k.startswith("general.sampling.")]
