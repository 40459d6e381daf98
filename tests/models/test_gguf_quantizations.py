"""Any GGUF of the llama architecture opens whatever its quantization: each type gguf-py
dequantizes, in a tiny model written with gguf-py, gives through `load_model` (from an Ollama
store, by its Ollama name) exactly the logits of gguf-py's dequantization followed by our
float32 forward; a type it cannot read is refused, and listed, with the reason."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
from model_stores import Stores, add_ollama_model
from tiny_gguf import WIDE, dequantized, tiny_hparams, tiny_tensors, write_tiny_gguf

from gpt_tui.engine import Llama
from gpt_tui.errors import ModelFileError
from gpt_tui.models import loading
from gpt_tui.models.gguf_file import llama_params
from gpt_tui.models.gguf_summary import dequantizable
from gpt_tui.models.stores.listing import store_models

Q = gguf.GGMLQuantizationType
COMMON = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
          "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]  # fmt: skip
IQ = ["IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ4_NL", "IQ4_XS"]


def test_the_gguf_package_dequantizes_every_type_named():
    assert all(dequantizable(name) for name in COMMON + IQ)
    assert not dequantizable("Q8_1")


@pytest.mark.parametrize("type_name", COMMON + IQ)
def test_a_quantized_gguf_gives_the_logits_of_gguf_pys_dequantization(
    stores: Stores, tmp_path, type_name: str
):
    qtype = Q[type_name]
    tensors = tiny_tensors(seed=9, dims=WIDE)
    path = write_tiny_gguf(tmp_path / f"tiny-{type_name}.gguf", tensors, qtype, dims=WIDE)
    add_ollama_model(stores.ollama, f"tiny:{type_name.lower()}", path)
    [listed] = store_models().models
    assert listed.summary.supported and listed.summary.quantization == type_name

    loaded = loading.load_model(f"tiny:{type_name.lower()}")
    hparams = tiny_hparams(dims=WIDE)
    expected = Llama(llama_params(dequantized(tensors, qtype), hparams), hparams)
    ids = loaded.tokenizer.encode("the theory of 42 cats")
    got = loaded.model.forward(ids)  # [n_seq, n_vocab]
    want = expected.forward(ids)  # [n_seq, n_vocab]
    assert np.isfinite(want).all() and want.std() > 0
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_a_type_gguf_py_cannot_read_is_listed_and_refused_with_the_reason(stores: Stores, tmp_path):
    path = write_tiny_gguf(tmp_path / "q8_1.gguf", tiny_tensors(dims=WIDE), Q.Q8_1, dims=WIDE)
    add_ollama_model(stores.ollama, "tiny:q8_1", path)
    [listed] = store_models().models
    assert "Q8_1, which the gguf package cannot dequantize" in listed.summary.problem
    with pytest.raises(ModelFileError, match="uses Q8_1, which the gguf package cannot"):
        loading.load_model("tiny:q8_1")
