"""Byte-level BPE: the tokenizer of GPT-2, general enough for other byte-level BPE vocabularies.

How text becomes token ids, in the order `Tokenizer.encode` does it:

1. **Special tokens.** Where the caller allows it, strings such as ``<|endoftext|>`` are cut out
   first and become their single id. Everything between them is ordinary text. A special string
   the caller did not allow is ordinary text too, so a user typing ``<|endoftext|>`` cannot end a
   prompt by accident.

2. **Pre-tokenization.** Ordinary text is cut into pieces by regular expressions, and BPE then
   runs inside each piece only, never across two. This keeps merges from gluing a word to the
   punctuation or the space after it ("dog." and "dog!" share the token for " dog"), and it
   keeps every piece short, which is what makes the per-piece cache below work. GPT-2 uses one
   pattern (`GPT2_PATTERN`): a few English contractions, then runs of letters, of digits and of
   other symbols, each with at most one leading space, and runs of whitespace. Other models stack
   patterns: SmolLM2 first isolates every digit (``\\p{N}``), then applies GPT-2's pattern to each
   piece. Each pattern splits each current piece into its matches *and* the gaps between them
   (what Hugging Face calls an "isolated" split), so no character is ever dropped.

3. **Bytes, shown as characters.** Each piece is turned into its UTF-8 bytes, so any text at all
   (emoji, control characters, a stray byte of a broken encoding) is a sequence of the 256
   possible bytes and nothing is ever "unknown". The vocabulary files, though, store tokens as
   text, and GPT-2's authors did not want raw control bytes or spaces in them (merges are stored
   as "left right" lines). So each byte is shown as a printable character (`bytes_to_unicode`):
   printable bytes stand for themselves and the other 68 are moved up to U+0100 and beyond. That
   is why a space appears as "Ġ" in encoder.json: " world" is stored as "Ġworld".

4. **Merges.** The merges list is the record of training: starting from single bytes, the most
   frequent adjacent pair was merged into a new token, again and again, 50,000 times for GPT-2.
   Encoding replays that history: among the adjacent pairs in the piece, merge the one learned
   earliest (lowest rank), and repeat until no adjacent pair is in the list. The symbols left
   over are the tokens.

5. **Cache.** The same pieces (" the", ",", " and") recur constantly, so the ids of each piece
   are remembered in a bounded LRU cache; a typical text runs the merge loop only for the pieces
   it has not seen before.

Decoding runs the other way: each id maps to its bytes, the bytes are joined, and the result is
decoded as UTF-8. A single token need not be valid UTF-8 on its own (GPT-2 has a token for the
first two bytes of "€" or "…"), which is why `StreamDecoder` exists.
"""

from __future__ import annotations

import codecs
import functools
import heapq
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import regex

from gpt_tui.errors import ModelFileError

__all__ = ["GPT2_PATTERN", "StreamDecoder", "Tokenizer", "bytes_to_unicode"]

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
"""GPT-2's pre-tokenizer, exactly as in OpenAI's encoder.py (also tiktoken's r50k_base)."""

GPT2_EOT = "<|endoftext|>"
GPT2_EOT_ID = 50256

BPE_CACHE_SIZE = 65_536
"""Pieces whose ids each tokenizer remembers; plenty for a long session's distinct words."""

JSON_FORMAT = "gpt-tui-byte-level-bpe"
JSON_VERSION = 1


@functools.cache
def bytes_to_unicode() -> tuple[str, ...]:
    """The printable character that stands for each byte 0..255 in a byte-level vocabulary.

    Bytes that are already printable and not whitespace ("!".."~", "¡".."¬", "®".."ÿ": 188 of
    them) stand for themselves. The other 68 (controls, space, DEL, the C1 block, no-break space,
    soft hyphen) are given the characters U+0100, U+0101, ... in byte order, so space (0x20,
    the 33rd of them) becomes U+0120 "Ġ" and newline becomes U+010A "Ċ". The mapping is a
    bijection, so vocabulary strings convert back to bytes without loss.
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars: list[str] = []
    moved = 0
    for byte in range(256):
        if byte in printable:
            chars.append(chr(byte))
        else:
            chars.append(chr(256 + moved))
            moved += 1
    return tuple(chars)


# str.translate tables that convert between raw bytes and their printable stand-ins in one C
# call. Raw bytes travel as a latin-1 string (one character per byte, same ordinal).
_BYTES_TO_CHARS = {byte: char for byte, char in enumerate(bytes_to_unicode())}
_CHARS_TO_BYTES: dict[int, str] = {ord(char): chr(byte) for byte, char in _BYTES_TO_CHARS.items()}
# Latin-1 characters that are *not* stand-ins (space, controls, ...) must not pass through
# unchanged and pose as bytes; U+FFFF makes the later latin-1 encode fail instead.
_CHARS_TO_BYTES.update({o: "\uffff" for o in range(256) if o not in _CHARS_TO_BYTES})


def _vocab_string_to_bytes(token: str) -> bytes | None:
    """The bytes a byte-level vocabulary string stands for, or None if it is not one."""
    try:
        return token.translate(_CHARS_TO_BYTES).encode("latin-1")
    except UnicodeEncodeError:
        return None


def _split_isolated(pattern: regex.Pattern[str], piece: str) -> Iterator[str]:
    """Split `piece` into the matches of `pattern` and the non-empty gaps between them."""
    position = 0
    for match in pattern.finditer(piece):
        start, end = match.span()
        if start == end:
            continue
        if start > position:
            yield piece[position:start]
        yield piece[start:end]
        position = end
    if position < len(piece):
        yield piece[position:]


@functools.lru_cache(maxsize=32)
def _special_regex(names: frozenset[str]) -> regex.Pattern[str] | None:
    """One alternation of the names, longest first so "<|a|>x" beats its prefix "<|a|>"."""
    if not names:
        return None
    ordered = sorted(names, key=lambda name: (-len(name), name))
    return regex.compile("|".join(regex.escape(name) for name in ordered))


def _without_lone_surrogates(text: str) -> str:
    """Replace unpaired surrogates (which have no UTF-8 form) with U+FFFD, as tiktoken does."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


class ByteVocabulary:
    """Decoding for any vocabulary whose tokens stand for bytes: this module's `Tokenizer`,
    the Hugging Face one (models/hf/tokenizer.py) and a server's pieces (backends/openai/vocab.py).
    A subclass gives `token_bytes`, and `_special_names` (id -> name shown) if it has any."""

    _special_names: dict[int, str] = {}

    def token_bytes(self, token_id: int) -> bytes:
        raise NotImplementedError

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        return b"".join([self.token_bytes(i) for i in ids])

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids`; bytes that are not valid UTF-8 become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def token_text(self, token_id: int) -> str:
        """One token as text, for display (a top-k list): special tokens show their name."""
        name = self._special_names.get(token_id)
        if name is not None:
            return name
        return self.token_bytes(token_id).decode("utf-8", errors="replace")

    def stream_decoder(self) -> StreamDecoder:
        return StreamDecoder(self)


class Tokenizer(ByteVocabulary):
    """A byte-level BPE tokenizer: GPT-2's, or any vocabulary stored the same way (GGUF).

    `tokens` is the vocabulary, id = index, each token written in the byte-to-unicode alphabet of
    `bytes_to_unicode` (the keys of encoder.json, GGUF's ``tokenizer.ggml.tokens``). `merges`
    lists the learned pairs in rank order. `special_tokens` maps names such as ``<|endoftext|>``
    to ids; they are matched in text only where `encode` is told to allow them. `pre_patterns`
    are applied in order, each splitting every current piece (default: GPT-2's one pattern).
    `eos_ids` end generation; `bos_id` is what an empty prompt starts from. `chat_template` is the
    model's Jinja chat template (see `gpt_tui.chat`), kept here because, as in Hugging Face's
    tokenizer config, it belongs with the special tokens it writes; None for a base model.
    """

    def __init__(
        self,
        tokens: list[str],
        merges: list[tuple[str, str]],
        special_tokens: dict[str, int],
        pre_patterns: list[str] | None = None,
        eos_ids: tuple[int, ...] = (),
        bos_id: int | None = None,
        chat_template: str | None = None,
    ) -> None:
        self._tokens = list(tokens)
        self._merges = [(left, right) for left, right in merges]
        self.special_tokens = dict(special_tokens)
        self.pre_patterns = list(pre_patterns) if pre_patterns is not None else [GPT2_PATTERN]
        self.eos_ids = tuple(int(i) for i in eos_ids)
        self.bos_id = None if bos_id is None else int(bos_id)
        self.chat_template = chat_template

        n_vocab = len(self._tokens)
        for what, token_id in [
            *((f"special token {name!r}", i) for name, i in self.special_tokens.items()),
            *(("eos id", i) for i in self.eos_ids),
            *([("bos id", self.bos_id)] if self.bos_id is not None else []),
        ]:
            if not 0 <= token_id < n_vocab:
                raise ValueError(f"{what} is {token_id}, outside a vocabulary of {n_vocab}")

        # Token string -> id. Should a string occur twice, the lower id wins (it is inserted last).
        self._ids: dict[str, int] = dict(
            zip(reversed(self._tokens), range(n_vocab - 1, -1, -1), strict=True)
        )

        # The merge loop works on ids, not strings: (left id, right id) -> (rank, merged id).
        # Pairs are the key, not the merged string, because "ab"+"c" and "a"+"bc" spell the
        # same token at different ranks, and only the pair learned earlier may merge first.
        self._merge_table: dict[tuple[int, int], tuple[int, int]] = {}
        for rank, (left, right) in enumerate(self._merges):
            try:
                pair = (self._ids[left], self._ids[right])
                merged = self._ids[left + right]
            except KeyError as missing:
                raise ModelFileError(
                    f"tokenizer merge #{rank} ({left!r} {right!r}) uses {missing} which is not in"
                    " the vocabulary; the tokenizer data is damaged"
                ) from None
            self._merge_table.setdefault(pair, (rank, merged))

        # Where a piece's bytes start: the single-byte token of each byte (None if missing).
        chars = bytes_to_unicode()
        self._byte_ids: list[int | None] = [self._ids.get(chars[byte]) for byte in range(256)]

        # Decoding table: id -> bytes. Special tokens (and any token that is not written in the
        # byte alphabet, such as a GGUF control token) decode to the UTF-8 of their text.
        special_names = {i: name for name, i in self.special_tokens.items()}
        self._special_names = special_names
        self._token_bytes: list[bytes] = []
        for token_id, token in enumerate(self._tokens):
            raw = None if token_id in special_names else _vocab_string_to_bytes(token)
            self._token_bytes.append(raw if raw is not None else token.encode("utf-8"))

        self._patterns = [regex.compile(p) for p in self.pre_patterns]
        self._special_regex_all = _special_regex(frozenset(self.special_tokens))
        self._bpe_cached = functools.lru_cache(maxsize=BPE_CACHE_SIZE)(self._bpe)

    # ---- construction ---------------------------------------------------------------------

    @classmethod
    def from_gpt2_files(
        cls, encoder_json_path: str | Path, vocab_bpe_path: str | Path
    ) -> Tokenizer:
        """GPT-2's tokenizer from OpenAI's encoder.json (token -> id) and vocab.bpe (merges)."""
        try:
            encoder = json.loads(Path(encoder_json_path).read_text(encoding="utf-8"))
            lines = Path(vocab_bpe_path).read_text(encoding="utf-8").split("\n")
        except (OSError, ValueError) as error:
            raise ModelFileError(f"cannot read GPT-2 tokenizer files: {error}") from error
        tokens = sorted(encoder, key=encoder.__getitem__)
        if [encoder[t] for t in tokens] != list(range(len(tokens))):
            raise ModelFileError(f"{encoder_json_path}: token ids are not 0..{len(tokens) - 1}")
        # vocab.bpe: a "#version: 0.2" line, then one "left right" merge per line. Byte-level
        # tokens never contain a real space (it is written "Ġ"), so the split is unambiguous.
        merges: list[tuple[str, str]] = []
        for number, line in enumerate(lines, start=1):
            if not line or line.startswith("#version"):
                continue
            left, space, right = line.partition(" ")
            if not space or not left or not right or " " in right:
                raise ModelFileError(f"{vocab_bpe_path}:{number}: not a 'left right' merge line")
            merges.append((left, right))
        return cls(
            tokens,
            merges,
            {GPT2_EOT: GPT2_EOT_ID},
            [GPT2_PATTERN],
            eos_ids=(GPT2_EOT_ID,),
            bos_id=GPT2_EOT_ID,
        )

    def to_json(self) -> dict[str, Any]:
        """Everything needed to rebuild this tokenizer, as JSON-serialisable data."""
        return {
            "format": JSON_FORMAT,
            "version": JSON_VERSION,
            "tokens": list(self._tokens),
            "merges": [[left, right] for left, right in self._merges],
            "special_tokens": dict(self.special_tokens),
            "pre_patterns": list(self.pre_patterns),
            "eos_ids": list(self.eos_ids),
            "bos_id": self.bos_id,
            "chat_template": self.chat_template,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tokenizer:
        """The tokenizer `to_json` described."""
        if not isinstance(data, dict) or data.get("format") != JSON_FORMAT:
            raise ModelFileError(f"not a gpt-tui tokenizer description (format {JSON_FORMAT!r})")
        if data.get("version") != JSON_VERSION:
            raise ModelFileError(
                f"tokenizer description version {data.get('version')!r} is not supported"
                f" (expected {JSON_VERSION}); convert the model again"
            )
        try:
            return cls(
                tokens=data["tokens"],
                merges=[(left, right) for left, right in data["merges"]],
                special_tokens=data["special_tokens"],
                pre_patterns=data["pre_patterns"],
                eos_ids=tuple(data["eos_ids"]),
                bos_id=data["bos_id"],
                chat_template=data.get("chat_template"),  # absent in descriptions before chat
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ModelFileError(f"damaged tokenizer description: {error!r}") from error

    # ---- encoding -------------------------------------------------------------------------

    @property
    def n_vocab(self) -> int:
        return len(self._tokens)

    def encode(self, text: str, allowed_special: str | set[str] = "none") -> list[int]:
        """Token ids of `text`.

        `allowed_special` says which special-token names are recognised as single tokens:
        "none" (every special string is ordinary text), "all", or a set of names.
        """
        text = _without_lone_surrogates(text)
        special_regex = self._allowed_special_regex(allowed_special)
        ids: list[int] = []
        if special_regex is None:
            self._encode_ordinary(text, ids)
            return ids
        start = 0
        for match in special_regex.finditer(text):
            self._encode_ordinary(text[start : match.start()], ids)
            ids.append(self.special_tokens[match.group()])
            start = match.end()
        self._encode_ordinary(text[start:], ids)
        return ids

    def _allowed_special_regex(self, allowed: str | set[str]) -> regex.Pattern[str] | None:
        if allowed == "none":
            return None
        if allowed == "all":
            return self._special_regex_all
        if isinstance(allowed, str):
            raise ValueError(f"allowed_special must be 'none', 'all' or a set; got {allowed!r}")
        unknown = set(allowed) - self.special_tokens.keys()
        if unknown:
            raise ValueError(f"not special tokens of this tokenizer: {sorted(unknown)}")
        return _special_regex(frozenset(allowed))

    def _encode_ordinary(self, text: str, ids: list[int]) -> None:
        """Append the ids of `text`, with no special tokens, to `ids`."""
        if not text:
            return
        pieces = [text]
        for pattern in self._patterns:
            pieces = [part for piece in pieces for part in _split_isolated(pattern, piece)]
        bpe = self._bpe_cached
        for piece in pieces:
            ids.extend(bpe(piece))

    def _bpe(self, piece: str) -> tuple[int, ...]:
        """The ids of one pre-tokenized piece: its bytes, merged by rank (step 4 above).

        The textbook loop (as in minGPT) scans every adjacent pair for the lowest rank, merges
        it, and scans again; that is quadratic, and one piece can be long (a pasted base64 blob
        or a page of Chinese has no spaces to cut at). So the candidate pairs wait in a heap
        ordered by (rank, position) and the symbols form a linked list. Popping gives the pair
        to merge next; an equal rank means the same pair, so the leftmost goes first, exactly
        the order of the textbook loop, tiktoken and Hugging Face. A merge changes only the
        pairs on either side of the new symbol: those are pushed, and heap entries made stale
        by it are recognised when popped (the pair now at that position has another rank).
        """
        return self._merge(piece.encode("utf-8"))

    def _merge(self, data: bytes) -> tuple[int, ...]:
        """The BPE of `data` (see `_bpe`)."""
        ids: list[int] = []
        for byte in data:
            byte_id = self._byte_ids[byte]
            if byte_id is None:
                raise ModelFileError(f"the tokenizer vocabulary has no token for byte {byte:#04x}")
            ids.append(byte_id)
        if len(ids) < 2:
            return tuple(ids)

        table = self._merge_table
        next_of = list(range(1, len(ids) + 1))
        next_of[-1] = -1
        prev_of = list(range(-1, len(ids) - 1))
        heap = [
            (merge[0], i)
            for i in range(len(ids) - 1)
            if (merge := table.get((ids[i], ids[i + 1]))) is not None
        ]
        heapq.heapify(heap)
        while heap:
            rank, left = heapq.heappop(heap)
            right = next_of[left]
            if right < 0 or ids[left] < 0:
                continue  # `left` was merged into its neighbour, or has none any more
            merge = table.get((ids[left], ids[right]))
            if merge is None or merge[0] != rank:
                continue  # stale: a merge nearby changed the pair at this position
            ids[left] = merge[1]
            ids[right] = -1
            after = next_of[left] = next_of[right]
            if after >= 0:
                prev_of[after] = left
                if (merge := table.get((ids[left], ids[after]))) is not None:
                    heapq.heappush(heap, (merge[0], left))
            before = prev_of[left]
            if before >= 0 and (merge := table.get((ids[before], ids[left]))) is not None:
                heapq.heappush(heap, (merge[0], before))
        return tuple(i for i in ids if i >= 0)

    # ---- decoding -------------------------------------------------------------------------

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes token `token_id` stands for (a special token: the UTF-8 of its name)."""
        if not 0 <= token_id < len(self._token_bytes):
            raise ValueError(f"token id {token_id} is outside a vocabulary of {self.n_vocab}")
        return self._token_bytes[token_id]


class StreamDecoder:
    """Turns ids arriving one at a time into text, never showing half a character.

    A character can be split across tokens ("€" is three bytes; GPT-2 may emit b"\\xe2\\x82"
    then b"\\xac"). Decoding each token alone would show U+FFFD twice; instead the bytes of an
    incomplete sequence are held back until the rest arrives. Bytes that can never become valid
    UTF-8 are replaced at once, so the concatenated output equals `Tokenizer.decode` of all ids.
    """

    def __init__(self, tokenizer: ByteVocabulary) -> None:
        self._tokenizer = tokenizer
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        """The text completed by this token; "" while a character is still incomplete."""
        return self._utf8.decode(self._tokenizer.token_bytes(token_id))

    def flush(self) -> str:
        """What is left at the end (an incomplete sequence as U+FFFD); then start afresh."""
        text = self._utf8.decode(b"", final=True)
        self._utf8.reset()
        return text
