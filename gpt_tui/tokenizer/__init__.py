"""Text <-> token ids, and the chat markup instruct models were trained on.

    bpe.py    byte-level BPE (GPT-2's, and any GGUF byte-level vocabulary), streaming decoder
    hf.py     Hugging Face `tokenizers` (tokenizer.json) behind the same interface
    chat.py   chat messages -> the prompt a model continues (its Jinja template, or a transcript)

The lowest layer after `errors`: the engine decodes and stops on text with these.
"""

from gpt_tui.tokenizer.bpe import (
    GPT2_EOT,
    GPT2_EOT_ID,
    GPT2_PATTERN,
    ByteVocabulary,
    StreamDecoder,
    Tokenizer,
    bytes_to_unicode,
)

__all__ = [
    "GPT2_EOT",
    "GPT2_EOT_ID",
    "GPT2_PATTERN",
    "ByteVocabulary",
    "StreamDecoder",
    "Tokenizer",
    "bytes_to_unicode",
]
