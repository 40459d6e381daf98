"""Word-wrapping a growing sequence of text pieces (tokens) into screen lines.

The output grows a few tokens at a time, up to a hundred times a second; wrapping everything again
each time would cost more than the model. Greedy wrapping is prefix-stable: a line is final once a
character has overflowed it, so appending text can only change the last line. `WrappedText`
therefore re-wraps from the start of the last line only; a width change re-wraps everything.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from rich.cells import get_character_cell_size


@dataclass(frozen=True, slots=True)
class Fragment:
    """Characters `start:end` of piece `piece`, drawn from cell `x` of their line."""

    piece: int
    start: int
    end: int
    x: int


def _cell_width(ch: str) -> int:
    return 1 if " " <= ch < "\x7f" else get_character_cell_size(ch)


def wrap_offsets(text: str, width: int) -> list[tuple[int, int]]:
    """(start, end) of each line of `text` wrapped greedily at `width` cells.

    Lines break after spaces where possible, else inside a word; spaces at the end of a line may
    hang past the width (they are cropped when drawn); "\\n" ends a line and belongs to none.
    """
    width = max(1, width)
    lines: list[tuple[int, int]] = []
    line_start = 0
    x = 0
    last_break = -1  # index just after the last space on this line
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            lines.append((line_start, i))
            line_start = i + 1
            x = 0
            last_break = -1
            i += 1
            continue
        w = _cell_width(ch)
        if ch == " ":
            x += w
            i += 1
            last_break = i
            continue
        if x + w > width and i > line_start:
            cut = last_break if last_break > line_start else i
            lines.append((line_start, cut))
            line_start = cut
            x = sum(_cell_width(c) for c in text[cut:i])
            last_break = -1
            if x + w > width and i > line_start:  # the word carried over is itself too long
                lines.append((line_start, i))
                line_start = i
                x = 0
        x += w
        i += 1
    lines.append((line_start, n))
    return lines


class WrappedText:
    """Pieces of text laid out in lines of at most `width` cells, re-wrapped incrementally."""

    def __init__(self, width: int = 80) -> None:
        self.width = max(1, width)
        self.pieces: list[str] = []
        self.lines: list[list[Fragment]] = [[]]
        self._line_starts: list[tuple[int, int]] = [(0, 0)]  # (piece, offset) where a line begins
        self._piece_lines: list[int] = []  # the line each piece begins on

    def __len__(self) -> int:
        return len(self.pieces)

    @property
    def line_count(self) -> int:
        return len(self.lines)

    def clear(self) -> None:
        self.pieces.clear()
        self.lines = [[]]
        self._line_starts = [(0, 0)]
        self._piece_lines = []

    def set_width(self, width: int) -> None:
        width = max(1, width)
        if width != self.width:
            self.width = width
            self._relayout_from(0)

    def extend(self, texts: list[str]) -> None:
        """Append pieces; only the last line and what follows it is wrapped again."""
        if not texts:
            return
        self.pieces.extend(texts)
        self._relayout_from(len(self.lines) - 1)

    def truncate(self, n_pieces: int) -> None:
        """Keep only the first `n_pieces` pieces."""
        if n_pieces >= len(self.pieces):
            return
        # The character that broke the two lines before may be gone: one overflowing character
        # can end a line at its last space and then the carried-over word at itself.
        line = max(0, self._piece_lines[n_pieces] - 2)
        del self.pieces[n_pieces:]
        self._relayout_from(line)

    def line_of(self, piece: int) -> int:
        """The line on which piece `piece` begins."""
        return self._piece_lines[piece]

    def fragment_of(self, piece: int) -> tuple[int, Fragment | None]:
        """The line on which `piece` begins and its first fragment there (None if it is empty
        or only a line break)."""
        line = self._piece_lines[piece]
        for y in range(line, min(line + 2, len(self.lines))):
            for frag in self.lines[y]:
                if frag.piece == piece:
                    return y, frag
        return line, None

    def _relayout_from(self, line: int) -> None:
        """Wrap again from the beginning of `line` to the end."""
        piece0, offset0 = self._line_starts[line]
        del self.lines[line:]
        del self._line_starts[line:]
        keep = piece0 + (1 if offset0 > 0 else 0)  # a piece begun on an earlier line keeps it
        del self._piece_lines[keep:]

        texts = self.pieces[piece0:]
        if not texts:
            self.lines.append([])
            self._line_starts.append((piece0, 0))
            return
        starts: list[int] = []  # where each piece begins, relative to the re-wrapped text
        position = -offset0
        for text in texts:
            starts.append(position)
            position += len(text)
        flat = "".join(texts)[offset0:]
        offsets = wrap_offsets(flat, self.width)

        line_begins = [start for start, _ in offsets]
        for k in range(keep - piece0, len(texts)):
            self._piece_lines.append(line + bisect_right(line_begins, starts[k]) - 1)

        for start, end in offsets:
            k = bisect_left(starts, start)  # the first piece here, empty ones included
            if k == len(starts) or starts[k] != start:
                k -= 1
            self._line_starts.append((piece0 + k, start - starts[k]))
            frags: list[Fragment] = []
            x = 0
            pos = start
            while pos < end:
                while k + 1 < len(starts) and starts[k + 1] <= pos:
                    k += 1
                stop = min(end, starts[k] + len(texts[k]))
                frags.append(Fragment(piece0 + k, pos - starts[k], stop - starts[k], x))
                x += sum(_cell_width(c) for c in flat[pos:stop])
                pos = stop
            self.lines.append(frags)
