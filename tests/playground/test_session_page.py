"""The shared page, read as HTML: escaped, self-contained, coloured by the app's own function."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

from hand_session import HAND_TOKENS, PROMPT_SCORES

from gpt_tui.playground.session import Session
from gpt_tui.playground.session_files import write_session
from gpt_tui.playground.session_page import session_page
from gpt_tui.playground.token_colours import token_colours


class _Page(HTMLParser):
    """The page's token spans, script blocks and every URL it names."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens: list[dict[str, str]] = []
        self.scripts: list[str] = []
        self.urls: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.urls += [v for k, v in attrs.items() if k in ("src", "href") and v]
        if tag == "span" and "tok" in (attrs.get("class") or "").split():
            self.tokens.append({**attrs, "text": ""})
            self._in = "tok"
        elif tag == "script":
            self.scripts.append("")
            self._in = "script"

    def handle_endtag(self, tag):
        if tag in ("span", "script"):
            self._in = None

    def handle_data(self, data):
        if self._in == "tok":
            self.tokens[-1]["text"] += data
        elif self._in == "script":
            self.scripts[-1] += data


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    return parser


def test_every_token_is_a_span_with_its_text_escaped(page_session: Session) -> None:
    page = session_page(page_session)
    parsed = _parse(page)
    assert [t["text"] for t in parsed.tokens] == [t for t, *_ in PROMPT_SCORES + HAND_TOKENS]
    assert [t["class"] for t in parsed.tokens] == ["tok given"] * 2 + ["tok generated"] * 10
    # The tokens "<script>" and "</script>" are text, never tags: two scripts, the page's own.
    assert len(parsed.scripts) == 2
    assert "&lt;script&gt;" in page and "<b>model</b>" not in page
    assert "tiny &lt;b&gt;model&lt;/b&gt;" in page
    data = json.loads(parsed.scripts[0])
    assert len(data) == len(PROMPT_SCORES) + len(HAND_TOKENS)
    assert data[2 + 4]["alternatives"][0] == {"text": "␣is", "prob": 0.5, "chosen": False}
    assert "</script" not in parsed.scripts[0]


def test_colours_are_the_apps_for_every_mode(page_session: Session) -> None:
    parsed = _parse(session_page(page_session))
    for span, (_, prob, rank, _) in zip(parsed.tokens, PROMPT_SCORES + HAND_TOKENS, strict=True):
        for mode in ("probability", "rank", "surprisal"):
            text, background = token_colours(mode, prob, rank)
            assert f"--{mode[0]}-fg:{text};--{mode[0]}-bg:{background};" in span["style"]


def test_readable_without_script_or_network(page_session: Session) -> None:
    page = session_page(page_session)
    parsed = _parse(page)
    assert parsed.urls == []  # nothing fetched: styles and script are inline
    assert not re.search(r"https?://|url\(", page)
    first = parsed.tokens[2]["title"]
    assert "␣blue" in first and "p 62%" in first and "rank 1" in first and "␣clear" in first
    # Both branches as text, and the settings that differ from the defaults.
    assert "The sky is grey" in page and "The sky is blue and the sun" in page
    assert re.search(r'<tr class="changed"><th>top_k</th><td>40</td>', page)


def test_the_prompt_is_plain_text_where_its_scores_are_not_its_text() -> None:
    """A chat's prompt was scored through its template: its scores do not spell the text."""
    from hand_session import hand_session

    session = hand_session()
    session.prompt = "user: hello\n\nassistant: "
    parsed = _parse(session_page(session))
    assert [t["class"] for t in parsed.tokens] == ["tok generated"] * 10
    assert "user: hello" in session_page(session)


def test_a_session_without_tokens_is_a_page_too() -> None:
    page = session_page(Session(model="m", prompt="Hi & bye"))
    assert "0 tokens" in page and "Hi &amp; bye" in page and "Nothing generated yet" in page


def test_saving_writes_the_page_beside_the_markdown(page_session: Session, tmp_path) -> None:
    json_path, md_path = write_session(page_session, tmp_path / "s")
    html_path = tmp_path / "s.html"
    assert md_path == tmp_path / "s.md"
    assert html_path.read_text(encoding="utf-8") == session_page(page_session)
    assert not list(tmp_path.glob(".*.tmp"))
