from gpt_tui.engine import TokenEvent
from gpt_tui.playground.transcript import Transcript


def event(token_id: int, text: str, index: int = 0) -> TokenEvent:
    return TokenEvent(index, token_id, text, 0.5, -0.69, 0.5, 1, 1.0, (), 0)


class Tok:
    """Stands for a tokenizer: one id per character."""

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]


def chat(messages):
    return [ord(c) for m in messages for c in f"<{m['role']}>{m['content']}"] + [0]


def test_completion_continue_and_regenerate_start_from_the_cached_prefix():
    tok = Tok()
    s = Transcript()
    assert s.start_completion("ab", [1, 2], tok) == [1, 2]
    s.add_events([event(3, "c"), event(4, "d")])
    assert s.continue_context(tok, tok.encode, chat) == [1, 2, 3, 4]
    s.add_events([event(5, "e")])
    assert s.text() == "abcde"
    assert s.regenerate_context(tok, tok.encode, chat) == [1, 2]
    assert s.reply.events == [] and s.text() == "ab"


def test_chat_turns_render_through_the_template():
    tok = Tok()
    s = Transcript()
    context = s.start_chat_reply("hi", chat, tok)
    assert context == chat([{"role": "user", "content": "hi"}])
    s.add_events([event(7, "yo")])
    s.finish_reply("eos")
    s.start_chat_reply("again", chat, tok)
    assert s.messages() == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"},
        {"role": "user", "content": "again"},
        {"role": "assistant", "content": ""},
    ]
    assert s.text().startswith("user: hi\n\nassistant: yo")


def test_a_new_tokenizer_re_encodes_text_and_continues_in_a_new_turn():
    old, new = Tok(), Tok()
    s = Transcript()
    s.start_completion("ab", [1, 2], old)
    s.add_events([event(99, "c")])
    context = s.continue_context(new, new.encode, chat)
    assert context == [ord("a"), ord("b"), ord("c")]  # from the text, not old ids
    assert [t.role for t in s.turns] == ["prompt", "output", "output"]
    s.add_events([event(ord("d"), "d")])
    assert s.continue_context(new, new.encode, chat) == [97, 98, 99, 100]
    assert s.regenerate_context(new, new.encode, chat) == [97, 98, 99]


def test_chat_continue_after_a_model_switch_keeps_one_assistant_message():
    old, new = Tok(), Tok()
    s = Transcript()
    s.start_chat_reply("hi", chat, old)
    s.add_events([event(1, "partial")])
    context = s.continue_context(new, new.encode, chat)
    assert context == chat([{"role": "user", "content": "hi"}]) + new.encode("partial")
    s.add_events([event(2, " more")])
    assert s.messages()[-1] == {"role": "assistant", "content": "partial more"}
