"""The token vocabulary of a remote model, as far as this client has seen it.

A server names tokens by their text (a string, and on some servers its bytes too), not by ids
this client could share with it. The transcript, the inspector and saved sessions work on ids,
so each distinct piece met is given the next free id, and keeps it for as long as the backend
lives. Pieces are kept as bytes: a token can hold part of a UTF-8 character, and its string form
("" or "\\ufffd", depending on the server) would merge distinct tokens and lose bytes.

`decode(ids)` is the pieces' bytes joined and read as UTF-8, which is what the server would
print: so a context of ids goes back to the server as its text, and branching (the prefix plus
the chosen piece) is the prefix's text plus that piece's text.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from gpt_tui.errors import BackendError
from gpt_tui.tokenizer import ByteVocabulary

#: how vLLM marks a token that is not valid UTF-8 on its own (return_tokens_as_token_ids off)
_BYTES_PREFIX = "bytes:"


def piece_bytes(text: str, raw: Sequence[int] | None = None) -> bytes:
    """A token's bytes: the server's `bytes` list when it sends one, else vLLM's `bytes:\\xe2..`
    notation decoded, else the string's UTF-8."""
    if raw is not None:
        try:
            return bytes(raw)
        except (TypeError, ValueError):
            pass
    if text.startswith(_BYTES_PREFIX) and "\\x" in text:
        try:
            return (
                text[len(_BYTES_PREFIX) :]
                .encode("latin-1")
                .decode("unicode_escape")
                .encode("latin-1")
            )
        except (UnicodeError, ValueError):
            pass
    return text.encode("utf-8", errors="surrogatepass")


class PieceVocabulary(ByteVocabulary):
    """The tokenizer of a remote backend: ids of the pieces seen, and text <-> ids.

    `encode` needs the server (its own tokenizer): the backend passes `split`, which returns the
    pieces of a text; without one a text is a single piece. It can be slow (a request), so the
    core should call it where it calls the backend, not on the UI thread. Results are cached.
    """

    eos_ids: tuple[int, ...] = ()  # the server decides when a reply ends
    bos_id: int | None = None
    # no chat_template attribute: the server renders chat itself (see backends/openai docs)

    def __init__(self, split: Callable[[str], list[bytes]] | None = None) -> None:
        self._pieces: list[bytes] = []
        self._ids: dict[bytes, int] = {}
        self._lock = threading.Lock()  # compare columns intern from several threads
        self._split = split
        self._encoded: dict[str, tuple[int, ...]] = {}

    @property
    def n_vocab(self) -> int:
        return len(self._pieces)

    def intern(self, piece: bytes) -> int:
        with self._lock:
            found = self._ids.get(piece)
            if found is None:
                found = self._ids[piece] = len(self._pieces)
                self._pieces.append(piece)
            return found

    def encode(self, text: str, allowed_special: str | set[str] = "none") -> list[int]:
        """Ids of the server's pieces of `text` (special-token text is left to the server)."""
        if not text:
            return []
        cached = self._encoded.get(text)
        if cached is not None:
            return list(cached)
        whole = [text.encode("utf-8")]
        try:
            pieces = self._split(text) if self._split is not None else whole
        except BackendError:
            # The text is still right as one piece; the server's trouble (down, too long a
            # text) is reported by the request that needs it. Not cached: next time may work.
            return [self.intern(whole[0])]
        if b"".join(pieces) != whole[0]:
            pieces = whole  # a split that loses text is no split
        ids = tuple(self.intern(p) for p in pieces)
        if len(self._encoded) > 256:
            self._encoded.clear()
        self._encoded[text] = ids
        return list(ids)

    def to_json(self) -> list[str]:
        """The pieces in id order, for a saved session: ids in it mean something only with the
        vocabulary they were given by (each piece's bytes as latin-1, one character a byte)."""
        with self._lock:
            return [p.decode("latin-1") for p in self._pieces]

    def load_json(self, pieces: list[str]) -> None:
        """Take the ids of a saved session's vocabulary; only into an empty one (before any
        request), so that no id already handed out changes meaning."""
        with self._lock:
            if self._pieces:
                raise ValueError("a vocabulary can be loaded only before it is used")
            for piece in pieces:
                data = piece.encode("latin-1")
                self._ids.setdefault(data, len(self._pieces))
                self._pieces.append(data)

    def token_bytes(self, token_id: int) -> bytes:
        try:
            return self._pieces[token_id]
        except IndexError:
            raise ValueError(f"token id {token_id} is not one this server has sent") from None
