"""Hugging Face models: the local hub cache, any directory saved by `save_pretrained`, the Hub.

One purpose per module:

    hub_cache.py    where the cache is (HF_HUB_CACHE, HF_HOME), its repos and their snapshots
    safetensors.py  safetensors files (and their shard index) -> float32 arrays, checked
    checkpoint.py   a model directory: config.json -> our hparams, refusing what we cannot run
    convert.py      a checkpoint -> the converted-model directory the engine loads
    hub.py          fetching a repo's safetensors, config and tokenizer with huggingface_hub

`gpt_tui.models.store` is the only caller outside this package.
"""
