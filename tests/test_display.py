"""How tokens, probabilities, sizes and durations are written for a person."""

from __future__ import annotations

from gpt_tui.display import human_bytes, human_count, human_duration, percent, visible_token


def test_human_formats():
    assert human_bytes(497_759_232) == "497.8 MB"
    assert human_bytes(None) == "?"
    assert human_duration(75) == "1:15"
    assert human_duration(3725) == "1:02:05"
    assert human_count(124_439_808) == "124M" and human_count(1_557_611_200) == "1.56B"


def test_tokens_and_probabilities():
    assert visible_token(" a\n") == "␣a↵" and visible_token("") == "∅"
    assert percent(0.5) == "50%" and percent(float("nan")) == "?"
