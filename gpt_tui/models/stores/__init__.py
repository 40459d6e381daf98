"""Other tools' model stores, read (never written) for the GGUF files they hold: Ollama's
(`ollama.py`), LM Studio's (`lm_studio.py`) and llama.cpp's download cache
(`llama_cpp_cache.py`). `listing.py` sums them up for `gpt-tui models` and the picker.

A store that is missing, unreadable, half-written or enormous costs a one-line notice, never
the listing: every reader returns what it found and what it skipped (`found.Found`).
"""
