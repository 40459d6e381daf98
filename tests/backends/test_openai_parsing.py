"""The pure parts of the remote backend: server-sent events, the servers' logprob shapes, the
piece vocabulary, the server kinds' request fields."""

from __future__ import annotations

import math

import pytest

from gpt_tui.backends.openai.logprobs import (
    echoed_prompt,
    entropy_lower_bound,
    parse_logprobs,
    rank_among,
)
from gpt_tui.backends.openai.servers import KINDS, detect_kind, ignored_settings, sampling_fields
from gpt_tui.backends.openai.sse import iter_sse_data
from gpt_tui.backends.openai.vocab import PieceVocabulary, piece_bytes
from gpt_tui.engine import SamplingParams
from gpt_tui.errors import BackendError


def test_sse_events_comments_and_multiline_data() -> None:
    lines = [": ping", "event: message", 'data: {"a":', "data: 1}", "", "", "data:[DONE]", ""]
    assert list(iter_sse_data(lines)) == ['{"a":\n1}', "[DONE]"]


def test_sse_drops_an_event_cut_by_the_end_of_the_stream() -> None:
    assert list(iter_sse_data(["data: {}", "", 'data: {"half'])) == ["{}"]


def test_the_chat_shape_with_bytes_and_ids() -> None:
    # llama-server's shape, also for /v1/completions; a token holding half a character
    entries = parse_logprobs({"content": [
        {"id": 9, "token": "\ufffd", "bytes": [0xF0, 0x9F], "logprob": -0.5,
         "top_logprobs": [{"id": 9, "token": "\ufffd", "bytes": [0xF0, 0x9F], "logprob": -0.5},
                          {"id": 3, "token": " a", "bytes": [32, 97], "logprob": -1.5}]},
    ]})  # fmt: skip
    (e,) = entries
    assert e.piece == b"\xf0\x9f" and e.exact and [t[0] for t in e.top] == [b"\xf0\x9f", b" a"]


def test_vllm_bytes_notation() -> None:
    assert piece_bytes("bytes:\\xe2\\x80") == b"\xe2\x80"
    assert piece_bytes(" plain") == b" plain"


@pytest.mark.parametrize(
    ("logprobs", "message"),
    [
        ({"tokens": ["a"], "token_logprobs": [0.5], "top_logprobs": [None]}, "at most 0"),
        ({"tokens": ["a"], "token_logprobs": ["x"], "top_logprobs": [None]}, "not a number"),
        ({"tokens": ["a", "b"], "token_logprobs": [-1.0], "top_logprobs": [None]}, "lengths"),
        ({"content": [{"logprob": -1.0}]}, "without a token"),
        ([1, 2], "not an object"),
    ],
)
def test_malformed_logprobs_are_one_clear_error(logprobs, message) -> None:
    with pytest.raises(BackendError, match=message):
        parse_logprobs(logprobs)


def test_rank_and_entropy_from_the_listed_alternatives() -> None:
    listed = [(b"a", "a", math.log(0.5)), (b"b", "b", math.log(0.3))]
    assert rank_among(b"b", math.log(0.3), listed) == 2
    assert rank_among(b"z", math.log(0.01), listed) == 3  # beyond the 2 listed
    h = entropy_lower_bound(b"a", math.log(0.5), listed)
    assert h == pytest.approx(-(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2)))


def test_echo_offsets_make_whole_characters() -> None:
    # llama-cpp-python: an emoji's tokens print "" on their own; its offsets still place them
    text = "Hi 😀 you"
    entries = parse_logprobs({
        "tokens": ["Hi", " ", "", "", " you", "!"], "text_offset": [0, 2, 3, 3, 4, 8],
        "token_logprobs": [None, -1.0, -2.0, -0.5, -1.0, -3.0], "top_logprobs": [None] * 6,
    })  # fmt: skip
    prompt = echoed_prompt(text, entries)
    assert [e.text for e in prompt] == ["Hi", " ", "😀", " you"]
    assert prompt[2].logprob == pytest.approx(-2.5)  # both halves of the character


def test_echo_without_offsets_must_spell_the_prompt() -> None:
    tokens = [{"token": t, "logprob": -1.0, "top_logprobs": []} for t in ("<s>", "Hi")]
    entries = parse_logprobs({"content": tokens})
    assert [e.text for e in echoed_prompt("Hi", entries)] == ["Hi"]
    with pytest.raises(BackendError, match="do not spell"):
        echoed_prompt("Hello", entries)


def test_vocabulary_ids_are_stable_and_decode_to_the_servers_text() -> None:
    vocab = PieceVocabulary(split=lambda text: [b"Hel", b"lo", b" \xf0\x9f", b"\x98\x80"])
    ids = vocab.encode("Hello 😀")
    assert vocab.decode(ids) == "Hello 😀" and vocab.intern(b"lo") == ids[1]
    decoder = vocab.stream_decoder()
    assert [decoder.push(i) for i in ids] == ["Hel", "lo", " ", "😀"]
    with pytest.raises(ValueError, match="not one this server has sent"):
        vocab.token_text(99)
    lossy = PieceVocabulary(split=lambda text: [b"x"])  # a split that loses text is not used
    assert lossy.decode(lossy.encode("abc")) == "abc"


def test_a_saved_vocabulary_keeps_its_ids() -> None:
    vocab = PieceVocabulary()
    ids = [vocab.intern(p) for p in (b" Paris", b"\xf0\x9f", b".")]
    again = PieceVocabulary()
    again.load_json(vocab.to_json())
    assert [again.token_bytes(i) for i in ids] == [b" Paris", b"\xf0\x9f", b"."]
    assert again.intern(b".") == ids[2] and again.intern(b"new") == 3
    with pytest.raises(ValueError, match="only before it is used"):
        again.load_json([])


def test_each_kind_gets_the_names_it_reads() -> None:
    params = SamplingParams(temperature=0.5, top_k=7, min_p=0.1, repetition_penalty=1.2, seed=3)
    assert sampling_fields(KINDS["vllm"], params)["repetition_penalty"] == 1.2
    llama = sampling_fields(KINDS["llama-server"], params)
    assert llama["repeat_penalty"] == 1.2 and llama["repeat_last_n"] == -1
    assert "repetition_penalty" not in llama
    ollama = sampling_fields(KINDS["ollama"], params)
    assert "top_k" not in ollama and ollama["seed"] == 3
    off = sampling_fields(KINDS["llama-cpp-python"], SamplingParams())
    assert off["top_k"] == 0 and off["min_p"] == 0.0 and "seed" not in off  # "off" is sent
    honoured = frozenset(KINDS["openai"].params)
    assert ignored_settings(KINDS["openai"], params, honoured) == [
        "top_k",
        "min_p",
        "repetition_penalty",
    ]


def test_kind_detection() -> None:
    def nothing(path: str) -> object:
        raise BackendError("404")

    assert detect_kind("http://x/v1", [{"owned_by": "vllm"}], nothing) == "vllm"
    assert detect_kind("http://x/v1", [{"owned_by": "llamacpp"}], nothing) == "llama-server"
    assert detect_kind("https://api.openai.com/v1", [], nothing) == "openai"
    spec = {"info": {"title": "🦙 llama.cpp Python API"}}
    assert detect_kind("http://x/v1", [{"owned_by": "me"}], lambda p: spec) == "llama-cpp-python"
    ollama = {"/api/version": {"version": "0.12.3"}}
    assert detect_kind("http://x/v1", [{"owned_by": "library"}], lambda p: ollama[p]) == "ollama"
    assert detect_kind("http://x/v1", [{"owned_by": "someone"}], nothing) == "generic"
