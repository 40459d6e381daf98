import random

import pytest

from gpt_tui.tui.wrap import WrappedText, wrap_offsets


def lines_text(wrapped: WrappedText) -> list[str]:
    return [
        "".join(wrapped.pieces[f.piece][f.start : f.end] for f in line) for line in wrapped.lines
    ]


def test_breaks_after_spaces_and_inside_long_words():
    assert wrap_offsets("hello world foo bar", 11) == [(0, 12), (12, 19)]
    text = "abcdefghij"
    assert [text[a:b] for a, b in wrap_offsets(text, 4)] == ["abcd", "efgh", "ij"]


def test_newlines_end_lines_and_wide_characters_count_two_cells():
    text = "ab\n\ncd"
    assert [text[a:b] for a, b in wrap_offsets(text, 10)] == ["ab", "", "cd"]
    text = "中文中文"
    assert [text[a:b] for a, b in wrap_offsets(text, 5)] == ["中文", "中文"]


def test_fragments_keep_piece_boundaries_and_cell_offsets():
    wrapped = WrappedText(8)
    wrapped.extend(["The", " cat", " sat", " on", " 中"])
    assert lines_text(wrapped) == ["The cat ", "sat on ", "中"]
    first = wrapped.lines[0]
    assert [(f.piece, f.x) for f in first] == [(0, 0), (1, 3), (2, 7)]
    assert wrapped.line_of(4) == 1  # " 中" begins with the space at the end of line 1
    assert wrapped.fragment_of(3)[0] == 1


WORDS = ["the", " cat", " sat", "\n", " on", "\n\n", " a", "supercalifragilistic", "  ", "é",
         "中文", " 😀", "", "x", "\t"]  # fmt: skip


@pytest.mark.parametrize("seed", range(40))
def test_incremental_layout_equals_a_full_one(seed):
    """Appending, truncating and resizing give exactly the lines of wrapping from scratch."""
    rng = random.Random(seed)
    width = rng.randint(1, 30)
    incremental = WrappedText(40)
    incremental.set_width(width)
    pieces: list[str] = []
    for _ in range(rng.randint(1, 20)):
        batch = [rng.choice(WORDS) for _ in range(rng.randint(1, 5))]
        pieces += batch
        incremental.extend(batch)
        if rng.random() < 0.25:
            n = rng.randint(0, len(pieces))
            pieces = pieces[:n]
            incremental.truncate(n)
        full = WrappedText(width)
        full.extend(list(pieces))
        assert incremental.lines == full.lines
        assert [incremental.line_of(i) for i in range(len(pieces))] == [
            full.line_of(i) for i in range(len(pieces))
        ]
    assert "".join(lines_text(incremental)) == "".join(pieces).replace("\n", "")
