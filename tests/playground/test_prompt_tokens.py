"""The prompt's tokens found in the text the output view draws, with their scores."""

from __future__ import annotations

from gpt_tui.engine import TokenEvent, TokenScore
from gpt_tui.playground.prompt_tokens import prompt_spans
from gpt_tui.playground.transcript import Transcript
from gpt_tui.tokenizer.chat import encode_chat


def score(position: int, token_id: int) -> TokenScore:
    return TokenScore(position, token_id, "", 0.5, -0.69, 2, 1.0, ())


def test_completion_prompt_is_cut_at_its_tokens(gpt2_tokenizer):
    text = "Hug 🤗 me"  # "🤗" is three tokens: two hold part of it and draw nothing
    ids = gpt2_tokenizer.encode(text)
    t = Transcript()
    t.start_completion(text, ids, gpt2_tokenizer)
    t.add_prompt_scores([score(p, i) for p, i in enumerate(ids) if p])
    spans = prompt_spans(t)[0]
    assert "".join(s.text for s in spans) == text
    assert all(s.token is not None for s in spans)
    positions = [s.token.position for s in spans]
    assert len(positions) < len(ids)  # the token holding half a character has no text
    assert spans[0].token.score is None and all(s.token.score for s in spans[1:])


def test_chat_messages_are_found_in_the_rendered_chat(gpt2_tokenizer):
    t = Transcript()
    chat = lambda messages: encode_chat(gpt2_tokenizer, messages)  # noqa: E731
    t.start_chat_reply("  Hi there ", chat, gpt2_tokenizer)  # the plain template strips it
    spans = prompt_spans(t)[0]
    assert "".join(s.text for s in spans) == "  Hi there "
    assert spans[0].token is None and spans[-1].token is None  # the stripped spaces
    assert [s.text for s in spans if s.token] == ["Hi", " there"]


def test_scores_of_a_shared_prefix_are_kept_and_a_new_model_drops_them():
    class Tok:
        def encode(self, text: str) -> list[int]:
            return [ord(c) for c in text]

    tok = Tok()
    t = Transcript()
    t.start_completion("abc", [1, 2, 3], tok)
    assert t.prompt_scored_length() == 1
    assert t.add_prompt_scores([score(1, 2), score(2, 3)])
    assert not t.add_prompt_scores([score(3, 4)])  # past the prompt: the reply's
    assert t.prompt_scored_length() == 3
    t.add_events([TokenEvent(0, 4, "d", 0.25, -1.386, 0.25, 3, 2.0, (), 3)])
    t.start_completion("abde", [1, 2, 4, 5], tok)
    assert [s.position for s in t.prompt_scores] == [1]  # "ab" is shared, "c" is not
    t.start_completion("abdx", [1, 2, 3, 4, 9], tok)  # the old prompt and the reply's token
    t.add_prompt_scores([score(1, 2), score(2, 3)])
    t.add_events([TokenEvent(0, 7, "e", 0.25, -1.386, 0.25, 3, 2.0, (), 5)])
    t.start_completion("abcdeg", [1, 2, 3, 4, 9, 7, 8], tok)
    assert [s.position for s in t.prompt_scores] == [1, 2, 5]  # 3 and 4 were never scored
    assert t.prompt_scores[-1].logprob == -1.386 and t.prompt_scored_length() == 3
    t.regenerate_context(Tok(), tok.encode, lambda m: [])  # another model's tokenizer
    assert t.prompt_scores == []
