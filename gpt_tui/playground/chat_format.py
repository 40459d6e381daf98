"""Chat messages -> the text a model continues as the assistant's reply.

Instruct models (SmolLM2) bring a chat template, rendered by `gpt_tui.chat.render_chat`. A base
model such as GPT-2 has none: it gets a plain transcript ("User: ...\\n\\nAssistant:") and the
stop string `BASE_MODEL_STOP`, so that it does not write the user's next turn itself.
"""

from __future__ import annotations

from typing import Any

ROLE_NAMES = {"system": "System", "user": "User", "assistant": "Assistant"}
BASE_MODEL_STOP = "\nUser:"


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_chat_text(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The prompt for the assistant's next reply."""
    if has_chat_template(tokenizer):
        from gpt_tui.chat import render_chat  # lands with the SmolLM2 work; jinja2 is slow to load

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
