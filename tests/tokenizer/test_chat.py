"""Chat templates rendered as Hugging Face's apply_chat_template renders them."""

from __future__ import annotations

import pytest

from gpt_tui.errors import GptTuiError
from gpt_tui.tokenizer import Tokenizer, bytes_to_unicode
from gpt_tui.tokenizer.chat import render_chat

# SmolLM2-135M-Instruct's template, verbatim from its GGUF (tokenizer.chat_template).
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] +"
    " '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def chat_tokenizer(template: str | None = SMOLLM2_TEMPLATE) -> Tokenizer:
    tokens = [*SPECIALS, *bytes_to_unicode()]
    special = {name: i for i, name in enumerate(SPECIALS)}
    return Tokenizer(tokens, [], special, eos_ids=(2, 0), bos_id=1, chat_template=template)


def test_smollm2_template_adds_its_default_system_prompt() -> None:
    text = render_chat(chat_tokenizer(), [{"role": "user", "content": "What is 2+2?"}])
    assert text == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
        "Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_system_message_replaces_the_default_and_no_generation_prompt() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
    ]
    text = render_chat(chat_tokenizer(), messages, add_generation_prompt=False)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
    )


def test_rendered_special_tokens_encode_as_single_ids() -> None:
    tokenizer = chat_tokenizer()
    ids = tokenizer.encode(
        render_chat(tokenizer, [{"role": "user", "content": "x"}]), allowed_special="all"
    )
    assert ids.count(1) == 3 and ids.count(2) == 2 and ids[-1] == 3 + ord("\n")


def test_trim_blocks_lstrip_blocks_and_helpers_as_in_hugging_face() -> None:
    # Block tags eat their own line (trim_blocks) and leading indent (lstrip_blocks); bos_token,
    # eos_token, tojson (non-ASCII kept) and loop controls are available.
    template = (
        "{{ bos_token }}\n"
        "{% for m in messages %}\n"
        "    {% if m.role == 'skip' %}{% continue %}{% endif %}\n"
        "{{ m.content | tojson }}{{ eos_token }}\n"
        "{% endfor %}\n"
    )
    messages = [{"role": "user", "content": "héllo"}, {"role": "skip", "content": "no"}]
    text = render_chat(chat_tokenizer(template), messages)
    assert text == '<|im_start|>\n"héllo"<|im_end|>\n'


def test_raise_exception_in_a_template_is_a_clear_error() -> None:
    template = (
        "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}"
    )
    with pytest.raises(GptTuiError, match="chat template failed: first must be user"):
        render_chat(chat_tokenizer(template), [{"role": "assistant", "content": "x"}])


def test_templates_are_sandboxed() -> None:
    template = "{{ messages.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(GptTuiError, match="chat template failed"):
        render_chat(chat_tokenizer(template), [{"role": "user", "content": "x"}])


def test_invalid_template_syntax() -> None:
    with pytest.raises(GptTuiError, match="not valid Jinja"):
        render_chat(chat_tokenizer("{% for %}"), [{"role": "user", "content": "x"}])


def test_a_model_without_a_template_needs_an_instruct_model(gpt2_tokenizer: Tokenizer) -> None:
    with pytest.raises(GptTuiError, match="chat needs an instruct model"):
        render_chat(gpt2_tokenizer, [{"role": "user", "content": "x"}])


@pytest.mark.parametrize("message", [{"role": "user"}, {"role": "user", "content": 3}, "hi"])
def test_malformed_messages(message: object) -> None:
    with pytest.raises(GptTuiError, match="message 1 needs a 'role' and a 'content'"):
        render_chat(chat_tokenizer(), [message])  # type: ignore[list-item]


def test_chat_template_survives_the_tokenizer_json_round_trip() -> None:
    tokenizer = Tokenizer.from_json(chat_tokenizer().to_json())
    assert tokenizer.chat_template == SMOLLM2_TEMPLATE
    data = chat_tokenizer().to_json()
    del data["chat_template"]  # a description written before chat templates existed
    assert Tokenizer.from_json(data).chat_template is None
