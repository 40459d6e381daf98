from __future__ import annotations

import pytest

from gpt_tui.errors import UnknownModelError
from gpt_tui.models.catalog import CATALOG, resolve


@pytest.mark.parametrize(
    ("typed", "name"),
    [("124M", "124M"), ("124m", "124M"), ("gpt2", "124M"), ("GPT2-Medium", "355M"),
     ("gpt2-large", "774M"), (" gpt2-xl ", "1558M"), ("SmolLM2", "smollm2")],
)  # fmt: skip
def test_resolve_names_and_aliases_case_insensitively(typed: str, name: str) -> None:
    assert resolve(typed).name == name


def test_parameter_counts_are_gpt2s() -> None:
    counts = {spec.name: spec.n_params for spec in CATALOG}
    # The published sizes: 124M/355M/774M/1558M are these counts, rounded.
    assert counts["124M"] == 124_439_808
    assert counts["355M"] == 354_823_168
    assert counts["774M"] == 774_030_080
    assert counts["1558M"] == 1_557_611_200


def test_sizes_cover_the_float32_weights() -> None:
    for spec in CATALOG:
        if spec.kind == "gpt2":
            # The .data file alone is 4 bytes a parameter (124M: 497,759,232 bytes).
            assert 4 * spec.n_params < spec.download_bytes < 4 * spec.n_params + 5_000_000
            assert spec.memory_bytes > 4 * spec.n_params
    smollm2 = resolve("smollm2")
    assert smollm2.kind == "gguf" and smollm2.bundled
    assert 130e6 < smollm2.n_params < 140e6 and 90e6 < smollm2.download_bytes < 110e6


def test_unknown_name_lists_the_known_ones_and_suggests_the_closest() -> None:
    with pytest.raises(UnknownModelError) as info:
        resolve("125M")
    message = str(info.value)
    assert "'125M'" in message and "did you mean '124M'" in message
    for spec in CATALOG:
        assert spec.name in message


def test_unknown_name_without_a_close_match_has_no_suggestion() -> None:
    with pytest.raises(UnknownModelError) as info:
        resolve("llama-70b")
    assert "did you mean" not in str(info.value)
