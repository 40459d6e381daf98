from __future__ import annotations

import numpy as np
import pytest

from gpt_tui.engine import KVCache, kv_cache


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


def test_room_grows_by_doubling_and_decoding_across_it_equals_a_full_forward(
    tiny_gpt2, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kv_cache, "INITIAL_POSITIONS", 4)
    ids = np.arange(3, 23)  # 20 positions: room 4 -> 8 -> 16 -> 32
    cache = tiny_gpt2.new_cache()
    assert cache.capacity == 4
    steps = [tiny_gpt2.forward(ids[:3], cache)]
    steps += [tiny_gpt2.forward([t], cache) for t in ids[3:]]
    assert cache.capacity == 32 and cache.tokens() == ids.tolist()
    np.testing.assert_allclose(np.concatenate(steps), tiny_gpt2.forward(ids), atol=1e-5)
    streams = cache.repeat(2)  # room only for what is held, then growing again
    assert streams.capacity == 20
    step = tiny_gpt2.forward(np.full((2, 1), 7), streams)  # [2, 1, n_vocab]
    alone = tiny_gpt2.forward([*ids, 7])[-1]
    np.testing.assert_allclose(step[:, 0], np.stack([alone, alone]), atol=1e-5)
    with pytest.raises(ValueError, match="exceed"):
        cache.reserve(cache.n_ctx + 1)
