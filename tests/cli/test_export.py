"""`gpt-tui export`: a saved session as the page (or Markdown), and its one-line refusals."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "playground"))
from hand_session import hand_session  # noqa: E402

from gpt_tui.cli import main  # noqa: E402
from gpt_tui.playground.session import save, to_markdown  # noqa: E402
from gpt_tui.playground.session_page import session_page  # noqa: E402


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return save(hand_session(), tmp_path / "walk.json")


def test_html_beside_the_session_or_where_asked(saved: Path, tmp_path: Path, capsys) -> None:
    assert main(["export", str(saved), "--html"]) == 0
    page = saved.with_suffix(".html").read_text(encoding="utf-8")
    assert page == session_page(hand_session())
    assert capsys.readouterr().err.strip() == f"wrote {saved.with_suffix('.html')}"
    assert main(["export", str(saved), "--html", "-o", str(tmp_path / "new" / "p.html")]) == 0
    assert (tmp_path / "new" / "p.html").read_text(encoding="utf-8") == page
    capsys.readouterr()
    # A failure of the disk (here: a folder that is a file) is exit 1, as for every command.
    assert main(["export", str(saved), "--html", "-o", str(saved / "p.html")]) == 1
    assert capsys.readouterr().err.startswith(f"error: cannot write {saved / 'p.html'}: ")
    assert main(["export", str(saved), "--markdown", "-o", "-"]) == 0
    assert capsys.readouterr().out == to_markdown(hand_session())


def test_refusals_are_one_line(saved: Path, tmp_path: Path, capsys) -> None:
    assert main(["export", str(tmp_path / "none.json"), "--html"]) == 2
    assert capsys.readouterr().err.strip() == f"error: no session file at {tmp_path / 'none.json'}"
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    assert main(["export", str(tmp_path / "bad.json"), "--html"]) == 2
    assert "is damaged (invalid JSON" in capsys.readouterr().err
    assert main(["export", str(saved), "--html", "-o", str(saved)]) == 2
    assert "is the session itself" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["export", str(saved)])
    assert exited.value.code == 2
    assert "one of the arguments --html --markdown is required" in capsys.readouterr().err
