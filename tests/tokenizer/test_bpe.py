"""The byte-level BPE tokenizer against tiktoken's GPT-2 ids, and on hand-made vocabularies."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from gpt_tui.errors import ModelFileError
from gpt_tui.tokenizer import GPT2_PATTERN, Tokenizer, bytes_to_unicode

REFERENCE = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "gpt2_tokenizer_reference.json").read_text("utf-8")
)
TEXTS = sorted({case["text"] for case in REFERENCE})
EOT = "<|endoftext|>"
SMOLLM_PATTERNS = [r"\p{N}", GPT2_PATTERN]


def case_id(case: dict) -> str:
    return f"{case['allowed_special']}:{case['text'][:24]!r}"


# ---- GPT-2, exact against the reference ---------------------------------------------------


def test_hello_world(gpt2_tokenizer: Tokenizer) -> None:
    assert gpt2_tokenizer.encode("Hello world") == [15496, 995]
    assert gpt2_tokenizer.decode([15496, 995]) == "Hello world"
    assert gpt2_tokenizer.n_vocab == 50257
    assert gpt2_tokenizer.eos_ids == (50256,)
    assert gpt2_tokenizer.bos_id == 50256
    assert gpt2_tokenizer.special_tokens == {EOT: 50256}


@pytest.mark.parametrize("case", REFERENCE, ids=case_id)
def test_ids_equal_reference(gpt2_tokenizer: Tokenizer, case: dict) -> None:
    assert (
        gpt2_tokenizer.encode(case["text"], allowed_special=case["allowed_special"])
        == (case["ids"])
    )


def test_reference_covers_both_special_modes() -> None:
    modes = {case["allowed_special"] for case in REFERENCE if EOT in case["text"]}
    assert modes == {"none", "all"}


@pytest.mark.parametrize("allowed_special", ["none", "all"])
def test_round_trip(gpt2_tokenizer: Tokenizer, allowed_special: str) -> None:
    for text in TEXTS:
        ids = gpt2_tokenizer.encode(text, allowed_special=allowed_special)
        assert gpt2_tokenizer.decode(ids) == text
        assert gpt2_tokenizer.decode_bytes(ids) == text.encode("utf-8")


def test_endoftext_is_one_token_only_where_allowed(gpt2_tokenizer: Tokenizer) -> None:
    text = f"a{EOT}b"
    assert 50256 not in gpt2_tokenizer.encode(text)
    assert 50256 not in gpt2_tokenizer.encode(text, allowed_special=set())
    assert gpt2_tokenizer.encode(text, allowed_special="all") == [64, 50256, 65]
    assert gpt2_tokenizer.encode(text, allowed_special={EOT}) == [64, 50256, 65]
    assert gpt2_tokenizer.encode(EOT) == gpt2_tokenizer.encode("<|") + [437, 1659, 5239, 91, 29]


def test_allowed_special_is_checked(gpt2_tokenizer: Tokenizer) -> None:
    with pytest.raises(ValueError, match="<|im_start|>"):
        gpt2_tokenizer.encode("x", allowed_special={"<|im_start|>"})
    with pytest.raises(ValueError, match="allowed_special"):
        gpt2_tokenizer.encode("x", allowed_special="some")


def test_lone_surrogates_encode_as_replacement_character(gpt2_tokenizer: Tokenizer) -> None:
    # As tiktoken: an unpaired surrogate has no UTF-8 form and becomes U+FFFD.
    assert gpt2_tokenizer.encode("a\ud800b") == gpt2_tokenizer.encode("a\ufffdb")


def test_tokens_that_are_not_utf8_alone_round_trip(gpt2_tokenizer: Tokenizer) -> None:
    partial = [i for i in range(50256) if gpt2_tokenizer.token_bytes(i) == b"\xe2\x80"]
    assert len(partial) == 1  # GPT-2 has a token for the first two bytes of "…", "–", "’", ...
    assert gpt2_tokenizer.token_text(partial[0]) == "\ufffd"
    ids = gpt2_tokenizer.encode("wait… what’s that – 🇫🇷")
    assert any(not _is_utf8(gpt2_tokenizer.token_bytes(i)) for i in ids)
    assert gpt2_tokenizer.decode_bytes(ids) == "wait… what’s that – 🇫🇷".encode()


def test_random_text_round_trips(gpt2_tokenizer: Tokenizer) -> None:
    rng = random.Random(3)
    for _ in range(50):
        text = "".join(chr(rng.choice([rng.randrange(32, 0x3000), rng.randrange(0x1F300, 0x1FAFF)]))
                       for _ in range(rng.randrange(1, 80)))  # fmt: skip
        text = text.encode("utf-8", "replace").decode("utf-8")  # no surrogates
        assert gpt2_tokenizer.decode_bytes(gpt2_tokenizer.encode(text)) == text.encode()


def test_long_piece_is_not_quadratic(gpt2_tokenizer: Tokenizer) -> None:
    # 20,000 CJK characters have no space to cut at: one piece of 60,000 bytes. A quadratic
    # merge loop would take minutes; the heap takes a fraction of a second.
    rng = random.Random(5)
    text = "".join(
        rng.choice("日本語のテキスト中文字漢一二三四五六七八九十人大小山川") for _ in range(20_000)
    )
    start = time.perf_counter()
    ids = gpt2_tokenizer.encode(text)
    assert time.perf_counter() - start < 3.0
    assert gpt2_tokenizer.decode(ids) == text


def test_merge_order_matches_textbook_loop(gpt2_tokenizer: Tokenizer) -> None:
    """The heap-based merge gives exactly the ids of the simple minGPT loop, on long pieces."""
    data = gpt2_tokenizer.to_json()
    ranks = {(left, right): rank for rank, (left, right) in enumerate(data["merges"])}
    ids = {token: i for i, token in enumerate(data["tokens"])}
    one_piece = Tokenizer(data["tokens"], data["merges"], {}, pre_patterns=[])
    rng = random.Random(11)
    alphabet = "aeiou rstlnm.,'\n日本🙂é"
    for _ in range(20):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(50, 300)))
        expected = [ids[t] for t in _textbook_bpe(text, ranks)]
        assert one_piece.encode(text) == expected


# ---- decoding and streaming ---------------------------------------------------------------


def test_token_text_and_decode_of_special_tokens(gpt2_tokenizer: Tokenizer) -> None:
    assert gpt2_tokenizer.token_text(50256) == EOT
    assert gpt2_tokenizer.decode([15496, 50256]) == f"Hello{EOT}"
    assert gpt2_tokenizer.token_text(995) == " world"
    with pytest.raises(ValueError, match="outside"):
        gpt2_tokenizer.token_bytes(50257)
    with pytest.raises(ValueError, match="outside"):
        gpt2_tokenizer.decode([-1])


@pytest.mark.parametrize("text", ["👩‍👩‍👧 and 🇫🇷🇩🇪", "日本語のテキスト, 中文", "naïve café … ’s"])
def test_stream_decoder_never_shows_half_a_character(gpt2_tokenizer: Tokenizer, text: str) -> None:
    ids = gpt2_tokenizer.encode(text)
    assert any(not _is_utf8(gpt2_tokenizer.token_bytes(i)) for i in ids)  # really split
    stream = gpt2_tokenizer.stream_decoder()
    pieces = [stream.push(i) for i in ids]
    assert all("\ufffd" not in piece for piece in pieces)
    assert "".join(pieces) + stream.flush() == gpt2_tokenizer.decode(ids) == text


def test_stream_decoder_agrees_with_decode_on_random_ids(gpt2_tokenizer: Tokenizer) -> None:
    rng = random.Random(2)
    partial_ids = [i for i in range(50256) if not _is_utf8(gpt2_tokenizer.token_bytes(i))]
    for _ in range(200):
        ids = [rng.choice(partial_ids) if rng.random() < 0.5 else rng.randrange(50257)
               for _ in range(rng.randrange(1, 12))]  # fmt: skip
        stream = gpt2_tokenizer.stream_decoder()
        text = "".join(stream.push(i) for i in ids) + stream.flush()
        assert text == gpt2_tokenizer.decode(ids)


def test_stream_decoder_flushes_invalid_leftovers(gpt2_tokenizer: Tokenizer) -> None:
    [partial] = [i for i in range(50256) if gpt2_tokenizer.token_bytes(i) == b"\xe2\x80"]
    stream = gpt2_tokenizer.stream_decoder()
    assert stream.push(15496) == "Hello"
    assert stream.push(partial) == ""
    assert stream.flush() == "\ufffd"
    # After a flush the decoder starts afresh; a broken sequence is replaced once it is known.
    assert stream.push(partial) == ""
    assert stream.push(15496) == "\ufffdHello"
    assert stream.flush() == ""


# ---- serialisation ------------------------------------------------------------------------


def test_json_round_trip(gpt2_tokenizer: Tokenizer) -> None:
    data = json.loads(json.dumps(gpt2_tokenizer.to_json()))
    again = Tokenizer.from_json(data)
    assert again.to_json() == gpt2_tokenizer.to_json()
    assert (again.n_vocab, again.special_tokens) == (50257, {EOT: 50256})
    assert (again.eos_ids, again.bos_id, again.pre_patterns) == ((50256,), 50256, [GPT2_PATTERN])
    for case in REFERENCE:
        assert again.encode(case["text"], case["allowed_special"]) == case["ids"]


def test_json_round_trip_of_a_custom_tokenizer() -> None:
    tok = _byte_tokenizer([("1", "2")], ["<|im_start|>"], SMOLLM_PATTERNS, eos_ids=(257,))
    again = Tokenizer.from_json(json.loads(json.dumps(tok.to_json())))
    assert again.to_json() == tok.to_json()
    assert (again.eos_ids, again.bos_id, again.pre_patterns) == ((257,), None, SMOLLM_PATTERNS)


def test_from_json_rejects_other_data() -> None:
    with pytest.raises(ModelFileError, match="format"):
        Tokenizer.from_json({"tokens": []})
    data = _byte_tokenizer([], [], None).to_json()
    with pytest.raises(ModelFileError, match="version"):
        Tokenizer.from_json({**data, "version": 99})
    del data["merges"]
    with pytest.raises(ModelFileError, match="merges"):
        Tokenizer.from_json(data)


def test_missing_gpt2_files_are_a_model_file_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="encoder.json"):
        Tokenizer.from_gpt2_files(tmp_path / "encoder.json", tmp_path / "vocab.bpe")


# ---- hand-made vocabularies: pre-patterns, merge order, specials --------------------------


def _byte_tokenizer(
    merges: list[tuple[str, str]],
    specials: list[str],
    pre_patterns: list[str] | None,
    eos_ids: tuple[int, ...] = (),
) -> Tokenizer:
    """256 byte tokens, then one token per merge, then the special tokens."""
    tokens = list(bytes_to_unicode())
    tokens += [left + right for left, right in merges]
    special_tokens = {name: len(tokens) + i for i, name in enumerate(specials)}
    tokens += specials
    return Tokenizer(tokens, merges, special_tokens, pre_patterns, eos_ids=eos_ids)


def _texts(tok: Tokenizer, ids: list[int]) -> list[str]:
    return [tok.token_text(i) for i in ids]


DIGIT_MERGES = [("1", "2"), ("Ġ", "12"), ("b", "1"), ("a", "b")]


def test_gpt2_pattern_keeps_digit_runs_together() -> None:
    tok = _byte_tokenizer(DIGIT_MERGES, [], [GPT2_PATTERN])
    assert _texts(tok, tok.encode("12 12")) == ["12", " 12"]
    assert _texts(tok, tok.encode("ab12")) == ["ab", "12"]  # letters and digits are apart


def test_digits_isolated_before_gpt2_pattern() -> None:
    tok = _byte_tokenizer(DIGIT_MERGES, [], SMOLLM_PATTERNS)
    assert _texts(tok, tok.encode("12 12")) == ["1", "2", " ", "1", "2"]
    assert _texts(tok, tok.encode("x 2024!")) == ["x", " ", "2", "0", "2", "4", "!"]
    assert tok.decode(tok.encode("ab12 c3")) == "ab12 c3"


def test_isolated_split_keeps_the_gaps() -> None:
    # r"\p{N}" alone: the letters between digits stay pieces of their own, so "b1" never merges.
    digits_only = _byte_tokenizer(DIGIT_MERGES, [], [r"\p{N}"])
    assert _texts(digits_only, digits_only.encode("ab1c")) == ["ab", "1", "c"]
    no_split = _byte_tokenizer(DIGIT_MERGES, [], [])
    assert _texts(no_split, no_split.encode("ab1c")) == ["a", "b1", "c"]  # ("b","1") ranks first


def test_lower_rank_merges_first() -> None:
    bc_first = _byte_tokenizer([("b", "c"), ("a", "b")], [], None)
    assert _texts(bc_first, bc_first.encode("abc")) == ["a", "bc"]
    ab_first = _byte_tokenizer([("a", "b"), ("b", "c")], [], None)
    assert _texts(ab_first, ab_first.encode("abc")) == ["ab", "c"]


def test_equal_pairs_merge_left_to_right() -> None:
    tok = _byte_tokenizer([("a", "a")], [], None)
    assert _texts(tok, tok.encode("aaa")) == ["aa", "a"]
    assert _texts(tok, tok.encode("aaaaa")) == ["aa", "aa", "a"]


def test_longest_special_token_wins() -> None:
    tok = _byte_tokenizer([], ["<s>", "<s>x"], None)
    assert tok.encode("a<s>x<s>", allowed_special="all") == [ord("a"), 257, 256]
    assert tok.token_text(257) == "<s>x"


def test_invalid_vocabularies_are_refused() -> None:
    with pytest.raises(ModelFileError, match="not in the vocabulary"):
        Tokenizer(list(bytes_to_unicode()), [("a", "b")], {})
    with pytest.raises(ValueError, match="outside"):
        Tokenizer(list(bytes_to_unicode()), [], {"<eos>": 256})
    no_z = [t for t in bytes_to_unicode() if t != "z"]
    with pytest.raises(ModelFileError, match="0x7a"):
        Tokenizer(no_z, [], {}).encode("z")


# ---- helpers --------------------------------------------------------------------------------


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _textbook_bpe(piece: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """minGPT's loop: merge every occurrence of the lowest-rank pair, left to right; repeat."""
    chars = bytes_to_unicode()
    word = [chars[b] for b in piece.encode("utf-8")]
    while len(word) > 1:
        pairs = {(a, b) for a, b in zip(word, word[1:], strict=False)}
        best = min(pairs, key=lambda pair: ranks.get(pair, float("inf")))
        if best not in ranks:
            break
        merged: list[str] = []
        i = 0
        while i < len(word):
            if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                merged.append(word[i] + word[i + 1])
                i += 2
            else:
                merged.append(word[i])
                i += 1
        word = merged
    return word
