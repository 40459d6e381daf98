"""The plan of a model on this machine: measured once, kept, and measured again when the kept
one cannot be trusted (corrupt, older, another machine) or cannot be kept."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gpt_tui.engine import GPT2, cores, plan
from gpt_tui.engine.cores import ONE_CORE, Settings, Split
from gpt_tui.engine.layout import LAYOUTS, layout_of
from gpt_tui.engine.plan import Plan
from gpt_tui.engine.plan.keys import plan_key, weight_matrices
from gpt_tui.engine.plan.measure import DECODE_ROWS, LAYOUT_KIND, STEPS_KIND, measure
from gpt_tui.engine.plan.wisdom import load, plan_path, save
from gpt_tui.models.random_weights import random_gpt2_params


@pytest.fixture(autouse=True)
def private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GPT_TUI_HOME", str(tmp_path))
    monkeypatch.delenv(plan.PLAN_ENV, raising=False)
    return tmp_path


def test_measured_plan_is_complete_and_kept(tiny_params: dict) -> None:
    model = GPT2(tiny_params, _hparams())
    p = model.planned.plan
    assert p.source.startswith("measured, kept in ")
    assert set(p.settings.decode) == set(DECODE_ROWS)
    kinds = {t.kind for t in p.timings}
    assert {"decode, 2 rows", "decode, 8 rows", "prefill, 256 rows"} <= kinds
    layouts = [t.candidate.split(":")[0] for t in p.timings if t.kind == LAYOUT_KIND]
    assert layouts == list(LAYOUTS)  # both layouts timed, each one's best shown
    assert {t.candidate.split(":")[0] for t in p.timings if t.kind == "decode, 4 rows"} == set(
        LAYOUTS
    )
    four = [t.candidate for t in p.timings if t.kind == "decode, 4 rows"]
    assert any(c.startswith("rows: ") and c.endswith("block @ x^T") for c in four)  # both forms
    assert not any(c.startswith("blocks: ") and c.endswith("block @ x^T") for c in four)
    stepped = [t.candidate.split(":")[0] for t in p.timings if t.kind == STEPS_KIND]
    assert set(stepped) == set(LAYOUTS)  # the one-row split chosen in whole steps, each layout
    held = {layout_of(w) for _, w in weight_matrices(model)}
    assert held == {p.settings.layout}  # the model was arranged as its plan says
    assert any(k.startswith("prefill attention") for k in kinds)
    chunks = [t.candidate for t in p.timings if t.kind.startswith("prefill chunk")]
    assert [c.split()[0] for c in chunks] == ["64"]  # no chunk beyond the tiny n_ctx of 64
    assert p.settings.prefill_chunk == 64
    assert all(t.seconds > 0 for t in p.timings)
    again = GPT2(tiny_params, _hparams())  # the same shapes: the kept plan, nothing measured
    assert again.planned.plan.source.startswith("loaded from ")
    assert again.planned.plan.settings == p.settings


def test_replan_measures_again(tiny_params: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    GPT2(tiny_params, _hparams())
    monkeypatch.setenv(plan.PLAN_ENV, "replan")
    assert GPT2(tiny_params, _hparams()).planned.plan.source.startswith("measured")


def test_default_plan_measures_and_writes_nothing(tiny_params: dict, private_home: Path) -> None:
    model = GPT2(tiny_params, _hparams(), plan="default")
    assert model.planned.plan.source == "default" and model.planned.plan.timings == ()
    assert not (private_home / "cache" / "plans").exists()


def test_unknown_plan_mode_is_refused(tiny_params: dict) -> None:
    with pytest.raises(ValueError, match="measure, replan or default"):
        GPT2(tiny_params, _hparams(), plan="fastest")


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: path.write_text("{not json"),
        lambda path: path.write_bytes(b"\x00\xff" * 10),
        lambda path: _edit(path, lambda d: d["key"]["machine"].update(cpu="Another CPU")),
        lambda path: _edit(path, lambda d: d["key"]["machine"].update(plan_version=0)),
        lambda path: _edit(path, lambda d: d["settings"].pop("decode")),
        lambda path: _edit(path, lambda d: d["settings"]["prefill"].update(parts=-1)),
        lambda path: _edit(path, lambda d: d["settings"].update(layout="diagonal")),
    ],
    ids=[
        "corrupt",
        "binary",
        "another machine",
        "older version",
        "incomplete",
        "bad values",
        "unknown layout",
    ],  # fmt: skip
)
def test_a_plan_file_not_to_be_trusted_is_measured_again(
    tiny_params: dict, damage, caplog: pytest.LogCaptureFixture
) -> None:
    first = GPT2(tiny_params, _hparams()).planned.plan
    path = Path(first.source.removeprefix("measured, kept in "))
    damage(path)
    with caplog.at_level(logging.WARNING, logger="gpt_tui.engine.plan"):
        again = GPT2(tiny_params, _hparams()).planned.plan
    assert again.source.startswith("measured") and again.notice is not None
    assert "ignored" in again.notice and "\n" not in again.notice
    assert caplog.records and str(path) in caplog.records[0].getMessage()
    assert load(path, again.key).settings == again.settings  # rewritten, whole


def test_an_unwritable_cache_keeps_the_plan_in_memory(
    tiny_params: dict, private_home: Path
) -> None:
    (private_home / "cache").mkdir()
    (private_home / "cache" / "plans").write_text("a file where the directory should be")
    p = GPT2(tiny_params, _hparams()).planned.plan
    assert p.source == "measured, kept in memory"
    assert p.notice is not None and "cannot keep it" in p.notice


def test_the_key_names_what_the_plan_depends_on(tiny_gpt2: GPT2) -> None:
    key = plan_key(tiny_gpt2)
    assert {"cpu", "cores", "numpy", "blas", "plan_version"} <= set(key["machine"])
    assert key["machine"]["cores"] == cores.n_cores()
    assert key["model"]["architecture"] == "gpt2"
    assert key["model"]["matrices"]["16x48"] == 2  # c_attn of each of the 2 layers


def test_forward_is_the_same_under_every_plan(tiny_params: dict, every_plan: Settings) -> None:
    reference = GPT2(tiny_params, _hparams(), plan="default")
    planned = GPT2(tiny_params, _hparams(), plan=Plan(every_plan, key={}))
    ids = np.random.default_rng(0).integers(0, 50257, 23)
    expected = reference.forward(ids)
    np.testing.assert_allclose(planned.forward(ids), expected, rtol=1e-5, atol=1e-5)
    cache = planned.new_cache()
    planned.forward(ids[:20], cache)
    for i in range(20, 23):  # decode steps after a prefill, under the same plan
        step = planned.forward(ids[i : i + 1], cache)
        np.testing.assert_allclose(step[0], expected[i], rtol=1e-5, atol=1e-5)


def _hparams() -> dict:
    return {"n_vocab": 50257, "n_ctx": 64, "n_embd": 16, "n_head": 2, "n_layer": 2}  # the tiny one


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_no_plan_file_is_left_half_written(tiny_params: dict, private_home: Path) -> None:
    GPT2(tiny_params, _hparams())
    names = os.listdir(private_home / "cache" / "plans")
    assert len(names) == 1 and names[0].endswith(".json") and not names[0].startswith(".")


def test_describe_says_what_each_kind_of_work_does() -> None:
    settings = Settings(decode={1: Split(parts=2, min_bytes=1 << 20)}, attention_min_keys=256,
                        attention_parts=2)  # fmt: skip
    rows = dict(Plan(replace(settings, query_tile=64), key={}).describe())
    assert rows["decode, 1 row"].startswith("shared between 2 cores (from 1 MB)")
    assert rows["decode attention"] == "shared between 2 cores from 256 keys"
    assert rows["prefill attention"] == "64 positions at a time"
    assert rows["prefill chunk"] == "256 positions per step"
    form = Plan(Settings(decode={1: ONE_CORE, 8: Split(parts=2, block_first=True)}), key={})
    assert (
        dict(form.describe())["decode, 8 rows"]
        == "shared between 2 cores (all matrices), block @ x^T"
    )


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_plans_layout_is_kept_and_the_model_arranged_in_it(
    tiny_params: dict, layout: str
) -> None:
    settings = Settings(decode={1: Split(parts=2), 8: Split(parts=2, block_first=True)},
                        layout=layout, prefill_chunk=512)  # fmt: skip
    kept = Plan(settings, key=plan_key(
        GPT2(tiny_params, _hparams(), plan="default")))  # fmt: skip
    save(kept, plan_path(kept.key))
    model = GPT2(tiny_params, _hparams())  # finds the kept plan
    assert model.planned.plan.source.startswith("loaded from ")
    assert model.planned.plan.settings == kept.settings
    assert {layout_of(w) for _, w in weight_matrices(model)} == {layout}
    assert dict(model.planned.plan.describe())["weights' layout"].startswith(
        {"blocks": "column blocks", "rows": "rows of W^T"}[layout]
    )


def test_a_model_built_from_another_models_weights_takes_them_over(tiny_params: dict) -> None:
    """Held matrices are rearranged in place: the first model's are then the second's, and the
    first refuses to compute instead of computing with rearranged memory."""
    first = GPT2(tiny_params, _hparams(), plan="default")
    second = GPT2(first.params, _hparams(), plan=Plan(Settings(layout="rows"), key={}))
    ids = [1, 2, 3]
    np.testing.assert_allclose(
        second.forward(ids), GPT2(tiny_params, _hparams(), plan="default").forward(ids),
        rtol=1e-5, atol=1e-5,
    )  # fmt: skip
    with pytest.raises(ValueError, match="build each model from weights of its own"):
        first.forward(ids)


def test_a_model_with_a_tiny_context_is_planned(private_home: Path) -> None:
    """Every timing fits the model's context (a whole step needs a cached token before it)."""
    hparams = {**_hparams(), "n_ctx": 4, "n_vocab": 64}
    model = GPT2(random_gpt2_params(hparams, seed=0), hparams)
    p = model.planned.plan
    assert p.settings.prefill_chunk == 4 and p.source.startswith("measured")
    assert model.forward(np.arange(4)).shape == (4, 64)


def test_a_plan_narrowed_to_one_layout_is_measured_in_it(tiny_params: dict) -> None:
    model = GPT2(tiny_params, _hparams(), plan="default")
    p = measure(model, layouts=("rows",))
    assert p.settings.layout == "rows"
    assert {t.candidate.split(":")[0] for t in p.timings if t.kind == STEPS_KIND} == {"rows"}
    assert {layout_of(w) for _, w in weight_matrices(model)} == {"blocks"}  # left as held


def test_blocks_compute_one_row_as_two(tiny_params: dict) -> None:
    # Whatever this machine prefers: in the blocks layout one row is computed as two, so the
    # one-row choice is one of the 2-row candidates.
    model = GPT2(tiny_params, _hparams(), plan="default")
    p = measure(model, layouts=("blocks",))
    assert p.settings.layout == "blocks"
    two_rows = [t.candidate for t in p.timings if t.kind == "decode, 2 rows"]
    assert f"blocks: {p.settings.decode[1].describe()}" in two_rows
