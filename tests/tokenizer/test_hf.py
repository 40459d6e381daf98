"""The `tokenizers` adapter: transformers' ids for the same files, gpt-tui's special-token rule,
streaming, the chat template."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpt_tui.tokenizer.chat import render_chat
from gpt_tui.tokenizer.hf import HFTokenizer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hf"
REFERENCE = json.loads((FIXTURES / "tokenizer_reference.json").read_text())


@pytest.fixture(scope="module")
def gpt2() -> HFTokenizer:
    return HFTokenizer.from_dir(FIXTURES / "gpt2")


@pytest.fixture(scope="module")
def smollm2() -> HFTokenizer:
    return HFTokenizer.from_dir(FIXTURES / "smollm2")


@pytest.mark.parametrize("name", ["gpt2", "smollm2"])
def test_ids_equal_transformers(name: str, request: pytest.FixtureRequest):
    tokenizer = request.getfixturevalue(name)
    for text, expected in zip(REFERENCE["strings"], REFERENCE[name], strict=True):
        # transformers always matches special names in text: our "all".
        assert tokenizer.encode(text, allowed_special="all") == expected, text
        assert tokenizer.decode(expected) == text


def test_gpt2_matches_our_own_bpe_of_openais_files(gpt2: HFTokenizer, gpt2_tokenizer):
    for text in REFERENCE["strings"]:
        assert gpt2.encode(text) == gpt2_tokenizer.encode(text), text
    assert gpt2.n_vocab == 50257 and gpt2.eos_ids == (50256,) and gpt2.bos_id == 50256


def test_smollm2_matches_the_bundled_gguf_tokenizer(smollm2: HFTokenizer):
    from gpt_tui.models.bundled import smollm2_gguf_path
    from gpt_tui.models.gguf_file import _open, _tokenizer

    reader = _open(smollm2_gguf_path())
    gguf = _tokenizer({k: f.contents() for k, f in reader.fields.items()}, smollm2_gguf_path())
    for text in REFERENCE["strings"]:
        assert smollm2.encode(text, allowed_special="all") == gguf.encode(text, "all"), text
    # The same tokens for a draft model: speculation may pair the two.
    from gpt_tui.engine.speculative import same_tokenizer

    assert same_tokenizer(smollm2, gguf) and same_tokenizer(gguf, smollm2)
    assert smollm2.special_tokens["<|im_end|>"] == 2
    assert smollm2.eos_ids[0] == 2 and 0 in smollm2.eos_ids  # <|im_end|>, then <|endoftext|>
    assert smollm2.bos_id == 1


def test_special_names_are_text_unless_allowed(smollm2: HFTokenizer):
    text = "<|im_start|>user"
    assert smollm2.encode(text)[0] != 1
    assert smollm2.encode(text, allowed_special="all")[0] == 1
    assert smollm2.encode(text, allowed_special={"<|im_start|>"})[0] == 1
    assert smollm2.encode(text, allowed_special={"<|im_end|>"}) == smollm2.encode(text)
    with pytest.raises(ValueError, match="not special tokens"):
        smollm2.encode(text, allowed_special={"<|nope|>"})


def test_stream_decoder_never_shows_half_a_character(gpt2: HFTokenizer):
    text = "emoji 🎉🐍 € …"
    ids = gpt2.encode(text)
    decoder = gpt2.stream_decoder()
    pieces = [decoder.push(i) for i in ids] + [decoder.flush()]
    assert "".join(pieces) == text and "\ufffd" not in "".join(pieces)
    assert gpt2.token_text(50256) == "<|endoftext|>"


def test_lone_surrogates_are_replaced_not_fatal(gpt2: HFTokenizer):
    assert gpt2.decode(gpt2.encode("a\ud800b")) == "a\ufffdb"


def test_chat_template_renders_as_transformers_does(smollm2: HFTokenizer):
    text = render_chat(smollm2, [{"role": "user", "content": "What is 2+2?"}])
    assert text == REFERENCE["smollm2_chat"]


def test_ids_past_the_tokenizer_are_padding_not_errors(gpt2: HFTokenizer):
    assert gpt2.token_bytes(50257) == b"" and gpt2.decode([15496, 60000]) == "Hello"
    with pytest.raises(ValueError, match="negative"):
        gpt2.token_bytes(-1)


def test_sentencepiece_style_vocabulary_maps_spaces_and_byte_fallback(tmp_path: Path):
    """TinyLlama's kind of tokenizer.json (Llama 2's SentencePiece BPE as transformers converts
    it): "▁" for a space, <0xNN> tokens for bytes outside the vocabulary."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers

    # As in Llama 2's file: control tokens, then the 256 byte tokens, then pieces and merges.
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    vocab |= {f"<0x{b:02X}>": 3 + b for b in range(256)}
    for piece in ["\u2581", *"helowrd,", "he", "ll", "hell", "hello", "\u2581hello"]:
        vocab.setdefault(piece, len(vocab))
    merges = [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), ("\u2581", "hello")]
    tok = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=True))
    tok.add_special_tokens([AddedToken(t, special=True) for t in ("<unk>", "<s>", "</s>")])
    tok.normalizer = normalizers.Sequence(
        [normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")]
    )
    tok.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
         decoders.Strip(" ", 1, 0)]
    )  # fmt: skip
    tok.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"bos_token": "<s>", "eos_token": "</s>"})
    )
    adapter = HFTokenizer.from_dir(tmp_path)

    text = "hello world\n€"
    ids = adapter.encode(text)
    assert ids == tok.encode(text, add_special_tokens=False).ids
    # Our bytes keep the leading space the normalizer added (a continuation needs it; the
    # library's decoder strips it from the start of a text).
    assert adapter.decode(ids) == " " + tok.decode(ids) == " hello world\n€"
    assert adapter.token_bytes(tok.token_to_id("<0x0A>")) == b"\n"
    assert adapter.bos_id == 1 and adapter.eos_ids[0] == 2
    assert not adapter.add_bos


def test_whether_texts_begin_with_bos(gpt2: HFTokenizer, smollm2: HFTokenizer, tmp_path: Path):
    from tokenizers import Tokenizer, processors

    assert not gpt2.add_bos and not smollm2.add_bos
    tok = Tokenizer.from_file(str(FIXTURES / "gpt2" / "tokenizer.json"))
    tok.post_processor = processors.TemplateProcessing(
        single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", 50256)]
    )  # as Llama 3's tokenizer.json starts every text with <|begin_of_text|>
    tok.save(str(tmp_path / "tokenizer.json"))
    assert HFTokenizer.from_dir(tmp_path).add_bos
