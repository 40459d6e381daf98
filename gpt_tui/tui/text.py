"""Small text helpers for the playground: output text, sizes, stop strings.

How a token and a probability are written (`visible_token`, `percent`) is shared with the CLI,
in `gpt_tui.display`.
"""

from __future__ import annotations


def display_text(text: str) -> str:
    """Text safe to put on a terminal line: tabs as spaces, other control characters as
    their Unicode pictures (␀, ␛...), so a model's stray escape byte cannot corrupt the screen.
    Newlines stay: they are line breaks."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch == "\n":
            out.append(ch)
        elif ch == "\t":
            out.append("    ")
        elif ch == "\r":
            continue
        else:
            out.append(_control_picture(ch))
    return "".join(out)


def _control_picture(ch: str) -> str:
    code = ord(ch)
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "␡"
    if 0x80 <= code < 0xA0:  # C1 controls: some terminals act on them
        return "�"
    return ch


def parse_stops(text: str) -> tuple[str, ...]:
    r"""Stop strings from the one-line input: comma-separated, with `\n`, `\t`, `\s` (a space),
    `\,` and `\\` escapes ("\n\n, END" -> ("\n\n", "END")). Spaces around an item are
    dropped unless escaped, so "a, b" means "a" and "b"."""
    escapes = {"n": "\n", "t": "\t", ",": ",", "\\": "\\", "s": " "}
    items: list[str] = []
    current: list[tuple[str, bool]] = []  # (character, escaped)

    def finish() -> None:
        while current and current[0] == (" ", False):
            current.pop(0)
        while current and current[-1] == (" ", False):
            current.pop()
        if current:
            items.append("".join(ch for ch, _ in current))
        current.clear()

    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in escapes:
            current.append((escapes[text[i + 1]], True))
            i += 2
            continue
        if ch == ",":
            finish()
        else:
            current.append((ch, False))
        i += 1
    finish()
    return tuple(items)


def format_stops(stops: tuple[str, ...]) -> str:
    """The input text `parse_stops` reads back as `stops`."""

    def escape(s: str) -> str:
        s = s.replace("\\", "\\\\").replace(",", "\\,").replace("\n", "\\n").replace("\t", "\\t")
        if s.startswith(" "):
            s = "\\s" + s[1:]
        if s.endswith(" "):
            s = s[:-1] + "\\s"
        return s

    return ", ".join(escape(s) for s in stops)
