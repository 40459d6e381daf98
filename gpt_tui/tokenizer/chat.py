"""Chat messages -> the exact prompt text an instruct model was trained on, via its own template.

Instruct models ship a Jinja template (in GGUF's `tokenizer.chat_template`, in Hugging Face's
tokenizer config) that writes a conversation in the markup the model learned, for SmolLM2:

    <|im_start|>system\\nYou are a helpful AI assistant ...<|im_end|>\\n
    <|im_start|>user\\nWhat is 2+2?<|im_end|>\\n
    <|im_start|>assistant\\n                      <- add_generation_prompt: the model's turn next

We render the model's template rather than hard-coding this markup, so any chat model works, and
we render it the way Hugging Face's `apply_chat_template` does (the reference every template is
written against): an immutable sandboxed Jinja environment (a template is data from a model file,
not trusted code), `trim_blocks` and `lstrip_blocks`, the `loopcontrols` extension, a `tojson`
filter that keeps non-ASCII text, and `raise_exception` for templates that reject a conversation.
The rendered text contains special-token names, so encode it with `allowed_special="all"`.

A base model such as GPT-2 has no template: it gets a plain transcript ("User: ...\\n\\nAssistant:")
and the stop string `BASE_MODEL_STOP`, so that it does not write the user's next turn itself.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gpt_tui.errors import GptTuiError

if TYPE_CHECKING:
    import jinja2

    from gpt_tui.tokenizer.bpe import Tokenizer

__all__ = ["BASE_MODEL_STOP", "encode_chat", "encode_prompt", "has_chat_template", "render_chat"]

ROLE_NAMES = {"system": "System", "user": "User", "assistant": "Assistant"}
BASE_MODEL_STOP = "\nUser:"


def render_chat(
    tokenizer: Tokenizer, messages: list[dict[str, str]], add_generation_prompt: bool = True
) -> str:
    """The prompt text for `messages` ({"role": "system"|"user"|"assistant", "content": ...}),
    ending with the assistant's cue when `add_generation_prompt`."""
    source = getattr(tokenizer, "chat_template", None)
    if not source:
        raise GptTuiError(
            "chat needs an instruct model with a chat template (such as smollm2); this model "
            "has none, so give it plain text to continue instead"
        )
    for number, message in enumerate(messages, start=1):
        if not isinstance(message, dict) or not all(
            isinstance(message.get(key), str) for key in ("role", "content")
        ):
            raise GptTuiError(f"chat message {number} needs a 'role' and a 'content' string")
    import jinja2  # only chat needs it

    special_names = {token_id: name for name, token_id in tokenizer.special_tokens.items()}
    eos_name = special_names.get(tokenizer.eos_ids[0]) if tokenizer.eos_ids else None
    bos_name = special_names.get(tokenizer.bos_id) if tokenizer.bos_id is not None else None
    try:
        return _compile(source).render(
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            bos_token=bos_name or "",
            eos_token=eos_name or "",
        )
    except jinja2.TemplateError as exc:
        raise GptTuiError(f"the model's chat template failed: {exc}") from exc


@functools.lru_cache(maxsize=8)
def _compile(source: str) -> jinja2.Template:
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.TemplateError(message)

    def tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
               separators: Any = None, sort_keys: bool = False) -> str:  # fmt: skip
        return json.dumps(
            value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
            sort_keys=sort_keys,
        )  # fmt: skip

    def strftime_now(fmt: str) -> str:
        return datetime.now().strftime(fmt)

    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    environment.filters["tojson"] = tojson
    environment.globals["raise_exception"] = raise_exception
    environment.globals["strftime_now"] = strftime_now
    try:
        return environment.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise GptTuiError(f"the model's chat template is not valid Jinja: {exc}") from exc


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_chat_text(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The prompt for the assistant's next reply."""
    if has_chat_template(tokenizer):
        return render_chat(tokenizer, messages, add_generation_prompt=True)
    turns = [f"{ROLE_NAMES.get(m['role'], m['role'])}: {m['content'].strip()}" for m in messages]
    return "\n\n".join([*turns, "Assistant:"])


def encode_chat(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of the chat prompt; a template's special tokens are real special tokens."""
    allowed = "all" if has_chat_template(tokenizer) else "none"
    return tokenizer.encode(render_chat_text(tokenizer, messages), allowed_special=allowed)


def encode_prompt(tokenizer: Any, text: str, allowed_special: str = "none") -> list[int]:
    """Token ids of a document's start (a completion prompt): with the beginning-of-text token
    first where the model's tokenizer puts it before every text (Llama 2 and 3, TinyLlama:
    `add_bos`), as transformers encodes it, since those models were trained so."""
    ids = tokenizer.encode(text, allowed_special)
    bos = tokenizer.bos_id
    if getattr(tokenizer, "add_bos", False) and bos is not None and (not ids or ids[0] != bos):
        ids = [bos, *ids]
    return ids
