"""The app's list of interventions (playground/intervention_list.py) and compare's first
difference (playground/compare.py)."""

from __future__ import annotations

import pytest

from gpt_tui.engine.hooked import Interventions, Steering
from gpt_tui.engine.interventions import Ablation
from gpt_tui.errors import InputError
from gpt_tui.playground.compare import first_difference
from gpt_tui.playground.intervention_list import (
    entries,
    interventions_line,
    steering_from_texts,
    toggled,
    without,
)

HEAD = Ablation(1, "head", 2)
MLP = Ablation(0, "mlp")


def test_toggled_adds_removes_and_switches_zero_and_mean() -> None:
    s, on = toggled(Interventions(), HEAD)
    assert on and s.ablations == (HEAD,)
    s, on = toggled(s, MLP)
    assert s.ablations == (HEAD, MLP)
    mean = Ablation(1, "head", 2, mean=True)
    s, on = toggled(s, mean)  # the same part the other way: switched in its place
    assert on and s.ablations == (mean, MLP)
    s, on = toggled(s, mean)  # the same way again: removed
    assert not on and s.ablations == (MLP,)


def test_entries_without_and_the_status_line() -> None:
    steering = Steering(6, 0.5, (1, 2), (3,), "good", "bad")
    s = Interventions((HEAD, Ablation(2, "attn", mean=True)), steering)
    assert entries(s) == ["ablate L2 H3", "ablate L3 attn (mean)",
                          "steer L7 x 0.5: 'good' - 'bad'"]  # fmt: skip
    assert interventions_line(s) == "ablated L2 H3, L3 attn (mean); steered at L7 x 0.5"
    assert without(s, 2) == Interventions(s.ablations)
    assert without(s, 0) == Interventions((Ablation(2, "attn", mean=True),), steering)
    with pytest.raises(IndexError):
        without(Interventions((HEAD,)), 1)
    assert interventions_line(Interventions()) == "" and entries(Interventions()) == []


def test_steering_from_the_dialogs_fields(tiny_gpt2, gpt2_tokenizer) -> None:
    s = steering_from_texts(tiny_gpt2, gpt2_tokenizer, "I love it", "I hate it", "2", "-4")
    assert (s.layer, s.coef) == (1, -4.0)  # the block counted from 1, as look inside counts
    assert s.add == tuple(gpt2_tokenizer.encode("I love it")) and s.add_text == "I love it"
    n = tiny_gpt2.n_layer
    for fields, message in [
        (("a", "b", "0", "1"), f"the model's blocks are 1-{n}"),
        (("a", "b", "two", "1"), "not a whole number"),
        (("a", "b", "1", "x"), "is not a number"),
        (("a", "b", "1", "nan"), "not a finite number"),
        (("", "b", "1", "1"), "two texts of at least one token"),
        (("a " * 200, "b", "1", "1"), "longer than the context"),
    ]:
        with pytest.raises(InputError, match=message):
            steering_from_texts(tiny_gpt2, gpt2_tokenizer, *fields)


@pytest.mark.parametrize(
    "a, b, first", [([1, 2, 3], [1, 2, 3], None), ([1, 2, 3], [1, 5, 3], 1), ([1, 2], [1, 2, 3], 2)]
)
def test_first_difference(a, b, first) -> None:
    assert first_difference(a, b) == first
