import pytest

from gpt_tui.tui.text import (
    display_text,
    format_stops,
    parse_stops,
)


def test_display_text_cannot_move_the_terminal_cursor():
    assert display_text("a\tb\r\nc\x1b[2J") == "a    b\nc␛[2J"
    assert display_text("plain text\n") == "plain text\n"


@pytest.mark.parametrize(
    ("text", "stops"),
    [
        ("", ()),
        ("END", ("END",)),
        (r"\n\n, END", ("\n\n", "END")),
        (r"a\,b, c", ("a,b", "c")),
        (r"\sUser:", (" User:",)),
        (r"back\\slash", ("back\\slash",)),
        (" , ,", ()),
    ],
)
def test_parse_stops(text, stops):
    assert parse_stops(text) == stops


@pytest.mark.parametrize("stops", [("\n\n", "END"), (" User:", "a,b"), ("x\\y", "tab\there ")])
def test_format_stops_round_trips(stops):
    assert parse_stops(format_stops(stops)) == stops
