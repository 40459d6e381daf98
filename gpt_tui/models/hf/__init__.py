"""Hugging Face models: the local hub cache, any directory saved by `save_pretrained`, the Hub.

One purpose per module:

    hub_cache.py    where the cache is (HF_HUB_CACHE, HF_HOME), its repos and their snapshots
    safetensors.py  safetensors files (and their shard index) -> float32 arrays, checked
    checkpoint.py   a model directory: config.json -> our hparams, refusing what we cannot run
    convert.py      a checkpoint -> the converted-model directory the engine loads
    hub.py          fetching a repo's safetensors, config and tokenizer with huggingface_hub

Outside this package, `models/conversion.py` converts with it, `models/loading.py` fetches and
loads with it, and `models/hf_models.py` lists the cache for `gpt-tui models` and the picker.
"""
