"""The converted cache: removing a model frees everything it held."""

from __future__ import annotations

import pytest

from gpt_tui import locations
from gpt_tui.models import availability, cache, conversion


def test_remove_model_frees_everything(gpt2_url: str):
    conversion.ensure_model("124M", keep_checkpoint=True)
    assert cache.remove_model("gpt2") > 3_000_000
    assert availability.status("124M") == "not downloaded"
    assert list(locations.models_dir().glob("124M*")) == [locations.models_dir() / "124M.lock"]
    assert cache.remove_model("124M") == 0
    with pytest.raises(Exception, match="bundled"):
        cache.remove_model("smollm2")
