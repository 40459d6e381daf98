"""What every architecture's model does the same way around its own blocks: a checked forward
pass (with hooks, over a kv cache or not), the pass under settings already active, and a pass
resumed at a block. `GPT2` and `Llama` inherit it and define `_hidden` (ids -> the last block's
output), `_blocks` (blocks from one on) and `_unembedded` (final norm and output projection).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from gpt_tui.engine.hooks import Hooks, HookSpec, as_hooks
from gpt_tui.engine.kv_cache import KVCache, checked_input, checked_resume, hidden_in_chunks


class ForwardPass:
    """The passes of a model whose subclass holds `planned`, `n_embd` and the three steps."""

    planned: Any
    n_embd: int

    def forward(
        self,
        ids: Any,
        cache: KVCache | None = None,
        *,
        last_only: bool = False,
        hooks: Hooks | HookSpec | None = None,
    ) -> np.ndarray:
        """Logits for the given positions, continuing where `cache` ends (appending to it).

        ids [n_seq] -> logits [n_seq, n_vocab]; ids [n_batch, n_seq] -> [n_batch, n_seq, n_vocab].
        Without a cache this is a full, independent forward pass. `last_only` computes the output
        projection for the last position alone (all generation needs): [1, n_vocab] per stream.
        `hooks` read or replace the pass's arrays at named points (engine/hooks.py).
        """
        ids, batched, cache = checked_input(self, ids, cache)  # ids [n_batch, n_seq]
        hooks = as_hooks(hooks, self)
        with self.planned.running(decoding=ids.shape[1] == 1, record=hooks is None):
            return self.logits(ids, cache, last_only, hooks, batched)

    def logits(
        self,
        ids: np.ndarray,
        cache: KVCache,
        last_only: bool = False,
        hooks: Hooks | None = None,
        batched: bool = True,
    ) -> np.ndarray:
        """`forward` on checked ids [n_batch, n_seq] under the kernel settings already active
        (the planner's timing runs this: engine/plan/measure.py)."""
        hidden = partial(self._hidden, hooks=hooks)
        whole = hooks is not None  # a hooked pass in one chunk: its hooks see every position
        x = hidden_in_chunks(hidden, ids, cache, last_only, whole)  # [n_batch, n_seq, n_embd]
        logits = self._unembedded(x, hooks)  # [n_batch, n_seq, n_vocab]
        return logits if batched else logits[0]

    def resume(
        self,
        layer: int,
        resid: np.ndarray,
        cache: KVCache | None = None,
        *,
        last_only: bool = False,
        hooks: Hooks | HookSpec | None = None,
    ) -> np.ndarray:
        """Logits [n_batch, n_seq, n_vocab] of a pass that starts at block `layer` with `resid`
        [n_batch, n_seq, n_embd] entering it, after the positions `cache` holds (without one,
        from position 0): what the blocks before computed is given, not computed again
        (activation patching: a patch at block L cannot change the blocks before it,
        engine/interventions.py). The cache's keys and values from block `layer` on are
        written, not committed: its length stays, and its earlier blocks' are not written."""
        x, cache = checked_resume(self, layer, resid, cache)  # x [n_tok, n_embd]
        n_batch = cache.n_batch
        hooks = as_hooks(hooks, self)
        with self.planned.running(decoding=False):
            x = self._blocks(x, n_batch, cache, hooks, layer)  # [n_tok, n_embd]
            x = x.reshape(n_batch, -1, self.n_embd)  # [n_batch, n_seq, n_embd]
            return self._unembedded(x[:, -1:] if last_only else x, hooks)

    def _hidden(self, ids: np.ndarray, cache: KVCache, hooks: Hooks | None) -> np.ndarray:
        raise NotImplementedError

    def _blocks(
        self, x: np.ndarray, n_batch: int, cache: KVCache, hooks: Hooks | None, first: int = 0
    ) -> np.ndarray:
        raise NotImplementedError

    def _unembedded(self, x: np.ndarray, hooks: Hooks | None) -> np.ndarray:
        raise NotImplementedError
