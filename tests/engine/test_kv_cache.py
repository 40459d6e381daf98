from __future__ import annotations

import numpy as np
import pytest

from gpt_tui.engine import KVCache


def test_store_writes_in_place_and_commit_advances() -> None:
    cache = KVCache(n_layer=2, n_kv_head=3, head_dim=4, n_ctx=10)
    k = np.ones((1, 3, 2, 4), dtype=np.float32)
    keys, values = cache.store(0, k, 2 * k)
    assert keys.shape == (1, 3, 2, 4) and np.shares_memory(keys, cache.k)
    assert cache.length == 0  # not until commit
    cache.commit(np.array([[5, 6]]))
    assert cache.length == 2 and cache.tokens() == [5, 6] and cache.free == 8


def test_common_prefix_and_truncate() -> None:
    cache = KVCache(n_layer=1, n_kv_head=1, head_dim=2, n_ctx=10)
    cache.commit(np.array([[1, 2, 3, 4]]))
    assert cache.common_prefix([1, 2, 9]) == 2
    assert cache.common_prefix([1, 2, 3, 4, 5, 6]) == 4
    assert cache.common_prefix([7]) == 0
    cache.truncate(1)
    assert cache.tokens() == [1]
    with pytest.raises(ValueError, match="cannot truncate"):
        cache.truncate(2)
