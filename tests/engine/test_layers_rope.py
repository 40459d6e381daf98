"""Rotary frequencies under Hugging Face's rope scalings (layers.rope_inverse_frequencies)."""

from __future__ import annotations

import numpy as np
import pytest

from gpt_tui.engine.layers import rope_inverse_frequencies

LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 8192}  # fmt: skip


def test_default_and_linear():
    plain = rope_inverse_frequencies(64, 10000.0)
    assert plain[0] == 1.0 and plain[-1] == pytest.approx(10000.0 ** (-62 / 64))
    linear = rope_inverse_frequencies(64, 10000.0, {"rope_type": "linear", "factor": 4.0})
    np.testing.assert_allclose(linear, plain / 4)


def test_llama3_keeps_high_frequencies_and_divides_low_ones():
    plain = rope_inverse_frequencies(128, 500000.0)
    scaled = rope_inverse_frequencies(128, 500000.0, LLAMA3)
    wavelength = 2 * np.pi / plain
    high = wavelength < 8192 / 4
    low = wavelength > 8192 / 1
    np.testing.assert_array_equal(scaled[high], plain[high])
    np.testing.assert_allclose(scaled[low], plain[low] / 8)
    between = ~high & ~low
    assert between.any() and np.all(scaled[between] < plain[between])
    assert np.all(scaled[between] > plain[between] / 8)


def test_unknown_scaling_is_refused():
    with pytest.raises(ValueError, match="'yarn' is not implemented"):
        rope_inverse_frequencies(64, 1e4, {"rope_type": "yarn", "factor": 2.0})
