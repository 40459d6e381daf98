"""A Hugging Face tokenizer (`tokenizer.json`, run by the `tokenizers` library) behind the
interface of `gpt_tui.tokenizer.Tokenizer`: encode, decode, token_bytes/token_text, the
streaming decoder, eos_ids, bos_id, special_tokens and the chat template.

Encoding is the library's own, so ids equal transformers' for the same files. Two things are
ours:

- **Special tokens only where allowed.** transformers always turns the text "<|im_end|>" into
  that token; gpt-tui matches special names only where the caller allows it (a user typing
  "<|endoftext|>" must not end their prompt). So the library runs with
  `encode_special_tokens=True` (special names are plain text to it), and the allowed names are
  cut out first, as `Tokenizer.encode` does.
- **Bytes per token.** Streaming needs each token's bytes, which the library's decode does not
  give: a byte-level vocabulary (GPT-2, SmolLM2, Qwen2, Llama 3) spells them in GPT-2's
  byte-to-unicode alphabet; a SentencePiece-style one (TinyLlama) writes "▁" for a space and
  "<0x0A>" for a raw byte.

The special tokens, the end-of-turn ids and the chat template come from `tokenizer_config.json`
(and `chat_template.jinja`, `generation_config.json`), as transformers reads them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gpt_tui.errors import ModelFileError
from gpt_tui.tokenizer.bpe import (
    ByteVocabulary,
    _special_regex,
    _vocab_string_to_bytes,
    _without_lone_surrogates,
)

#: Tokens that end a turn or a document, as for GGUF models (gguf_file.END_OF_GENERATION).
END_OF_GENERATION = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<|end|>")


class HFTokenizer(ByteVocabulary):
    """A `tokenizers.Tokenizer` with gpt-tui's tokenizer interface."""

    def __init__(
        self,
        tokenizer: Any,
        eos_ids: tuple[int, ...] = (),
        bos_id: int | None = None,
        chat_template: str | None = None,
    ) -> None:
        self._tokenizer = tokenizer
        tokenizer.encode_special_tokens = True  # special names are text unless cut out first
        self.eos_ids = tuple(int(i) for i in eos_ids)
        self.bos_id = None if bos_id is None else int(bos_id)
        self.chat_template = chat_template
        added = tokenizer.get_added_tokens_decoder()
        self.special_tokens = {t.content: i for i, t in added.items() if t.special}
        self._special_names = {i: name for name, i in self.special_tokens.items()}
        self._special_regex_all = _special_regex(frozenset(self.special_tokens))
        self.n_vocab = tokenizer.get_vocab_size(with_added_tokens=True)
        byte_level = _is_byte_level(_state(tokenizer.decoder))
        # transformers starts every encoded text with BOS when the post-processor says so
        # (Llama 2 and 3, TinyLlama; not GPT-2, SmolLM2, Qwen2). gpt-tui's encode never adds
        # it (a prompt is encoded in pieces); this says whether a prompt should begin with it.
        self.add_bos = _template_starts_with_special(_state(tokenizer.post_processor))
        self._token_bytes = [
            _bytes_of(tokenizer.id_to_token(i), i in self._special_names or i in added, byte_level)
            for i in range(self.n_vocab)
        ]

    @classmethod
    def from_dir(cls, path: Path) -> HFTokenizer:
        """The tokenizer of a model directory (tokenizer.json and its companions)."""
        from tokenizers import Tokenizer  # the Rust library loads only for these models

        try:
            tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        except FileNotFoundError:
            raise ModelFileError(f"{path} has no tokenizer.json") from None
        except Exception as exc:  # noqa: BLE001 - the library raises a bare Exception on bad JSON
            raise ModelFileError(f"{path / 'tokenizer.json'} is damaged: {exc}") from exc
        config = _read_json(path / "tokenizer_config.json")
        generation = _read_json(path / "generation_config.json")

        def token_id(value: Any) -> int | None:
            name = value.get("content") if isinstance(value, dict) else value
            return tokenizer.token_to_id(name) if isinstance(name, str) else None

        eos = [token_id(config.get("eos_token"))]
        ids = generation.get("eos_token_id")
        eos += ids if isinstance(ids, list) else [ids]
        eos += [tokenizer.token_to_id(name) for name in END_OF_GENERATION]
        return cls(
            tokenizer,
            eos_ids=tuple(dict.fromkeys(i for i in eos if isinstance(i, int))),
            bos_id=token_id(config.get("bos_token")),
            chat_template=_chat_template(path, config),
        )

    # ---- encoding -------------------------------------------------------------------------

    def encode(self, text: str, allowed_special: str | set[str] = "none") -> list[int]:
        """Token ids of `text`; `allowed_special` as for `Tokenizer.encode` ("none", "all" or a
        set of names recognised as single tokens)."""
        text = _without_lone_surrogates(text)  # the library takes UTF-8 only
        if allowed_special == "none":
            pattern = None
        elif allowed_special == "all":
            pattern = self._special_regex_all
        elif isinstance(allowed_special, str):
            raise ValueError(
                f"allowed_special must be 'none', 'all' or a set; got {allowed_special!r}"
            )
        else:
            unknown = set(allowed_special) - self.special_tokens.keys()
            if unknown:
                raise ValueError(f"not special tokens of this tokenizer: {sorted(unknown)}")
            pattern = _special_regex(frozenset(allowed_special))
        if pattern is None:
            return self._ordinary(text)
        ids: list[int] = []
        start = 0
        for match in pattern.finditer(text):
            ids += self._ordinary(text[start : match.start()])
            ids.append(self.special_tokens[match.group()])
            start = match.end()
        return ids + self._ordinary(text[start:])

    def _ordinary(self, text: str) -> list[int]:
        if not text:
            return []
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    # ---- decoding -------------------------------------------------------------------------

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes of a token; nothing for an id past the tokenizer's own table: models pad
        their embedding beyond it (Qwen2: 151,936 rows for 151,665 tokens), and a sampler may
        still draw one of those rows."""
        if token_id < 0:
            raise ValueError(f"token id {token_id} is negative")
        if token_id >= self.n_vocab:
            return b""
        return self._token_bytes[token_id]

    def to_json(self) -> dict[str, Any]:
        """The vocabulary, merges and special tokens in `Tokenizer.to_json`'s terms, so that
        `engine.speculative.same_tokenizer` can compare this tokenizer with any other (an HF
        SmolLM2 drafting with the bundled GGUF one, say)."""
        model = json.loads(self._tokenizer.to_str()).get("model", {})
        merges = [
            m.split(" ", 1) if isinstance(m, str) else list(m) for m in model.get("merges") or []
        ]
        return {
            "format": "huggingface-tokenizers",
            "tokens": [self._tokenizer.id_to_token(i) for i in range(self.n_vocab)],
            "merges": merges,
            "special_tokens": dict(self.special_tokens),
            "eos_ids": list(self.eos_ids),
            "bos_id": self.bos_id,
            "chat_template": self.chat_template,
        }


def _state(component: Any) -> dict[str, Any] | None:
    """A pipeline component's JSON description (the library pickles them as JSON)."""
    if component is None:
        return None
    try:
        return json.loads(component.__getstate__())
    except (AttributeError, TypeError, ValueError):
        return None


def _template_starts_with_special(processor: dict[str, Any] | None) -> bool:
    if not processor:
        return False
    if processor.get("type") == "Sequence":
        return any(_template_starts_with_special(p) for p in processor.get("processors") or [])
    single = processor.get("single") if processor.get("type") == "TemplateProcessing" else None
    return bool(single) and "SpecialToken" in single[0]


def _is_byte_level(decoder: dict[str, Any] | None) -> bool:
    if not decoder:
        return False
    if decoder.get("type") == "ByteLevel":
        return True
    return any(_is_byte_level(d) for d in decoder.get("decoders") or [])


def _bytes_of(token: str | None, added: bool, byte_level: bool) -> bytes:
    if token is None:
        return b""  # a hole in the ids
    if added:
        return token.encode("utf-8")
    if byte_level:
        raw = _vocab_string_to_bytes(token)
        return raw if raw is not None else token.encode("utf-8")
    if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
        try:
            return bytes([int(token[3:5], 16)])  # SentencePiece's byte fallback
        except ValueError:
            pass
    return token.replace("\u2581", " ").encode("utf-8")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path} is damaged: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _chat_template(path: Path, config: dict[str, Any]) -> str | None:
    """transformers 5 keeps the template in chat_template.jinja; older configs inline it, as a
    string or a list of named templates (the "default" one is the chat template)."""
    jinja = path / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    template = config.get("chat_template")
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template if isinstance(template, str) and template else None
