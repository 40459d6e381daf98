"""Saving the playground as a session file (ctrl+s), and opening one (`gpt-tui --open FILE`).

`gpt_tui.playground.session` defines the file: model, settings, prompt, the reply's branch tree with
every
token's probabilities, the prompt's scores, the chat messages. What only the app needs to show
the document again exactly goes in the session's `extra`, which that format keeps as is:

- `turns`: the turns before the reply, each with its tokens (an earlier chat reply keeps its
  probabilities; in completion mode this is the prompt);
- `reply`: the reply's role and why it stopped; `reply_prefix`: the ids it was generated after
  (so that continuing and branching reuse them exactly, whatever the encoding of the text);
- `editor`: what was in the prompt box; `n_top`: how many alternatives were kept per token.

A Markdown export (`gpt_tui.playground.session.to_markdown`) and a page
(`gpt_tui.playground.session_page`) are written next to the JSON, for sharing.

Plain data, no Textual: session <-> transcript, and writing and reading the files. The
playground core (`playground/core.py`) saves and opens through these; the app only asks where.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any

from gpt_tui.errors import SessionFileError
from gpt_tui.playground.branches import BranchTree
from gpt_tui.playground.session import (
    Session,
    event_from_json,
    event_to_json,
    load,
    save,
    to_markdown,
)
from gpt_tui.playground.session_page import session_page
from gpt_tui.playground.transcript import Transcript, Turn

ROLES = ("prompt", "output", "system", "user", "assistant")


# --- session <-> transcript ----------------------------------------------------------------------


def session_from_transcript(
    transcript: Transcript, model: str, sampling: Any, n_top: int, editor: str
) -> Session:
    """The session file's view of what the app shows."""
    reply = transcript.reply
    before = transcript.turns[:-1] if reply is not None else transcript.turns
    chat = transcript.messages(before) if transcript.mode == "chat" else None
    if chat is not None:
        # Read as a prompt (the Markdown export prints the prompt, then the reply after it).
        lead = "".join(f"{m['role']}: {m['content']}\n\n" for m in chat)
        prompt = lead + "assistant: " if reply is not None else lead
    else:
        prompt = "".join(turn.content for turn in before)
    extra = {
        "turns": [_turn_to_json(turn) for turn in before],
        "reply": None if reply is None else {"role": reply.role, "finish": reply.finish},
        "reply_prefix": list(transcript.reply_prefix),
        "editor": editor,
        "n_top": n_top,
    }
    return Session(
        model=model,
        prompt=prompt,
        sampling=sampling,
        tree=reply.tree if reply is not None else BranchTree(),
        prompt_scores=list(transcript.prompt_scores),
        chat=chat,
        extra=extra,
    )


def transcript_from_session(session: Session, source: str = "the session") -> Transcript:
    """The transcript a session shows; not yet bound to a tokenizer (see `bind_transcript`).

    Raises SessionFileError when the app's part of the file (`extra`) is damaged.
    """
    extra = session.extra
    chat = session.chat is not None
    transcript = Transcript(mode="chat" if chat else "completion")
    try:
        if "turns" in extra:
            turns = [_turn_from_json(raw) for raw in extra["turns"]]
        elif chat:  # a file written by something else: the messages, without their tokens
            messages = [m for m in session.chat if m["role"] in ("system", "user")]
            turns = [Turn(m["role"], m["content"]) for m in messages]
        else:
            turns = [Turn("prompt", session.prompt)]
        # A file of another writer has no "reply": there is one if the tree has tokens.
        reply = extra["reply"] if "reply" in extra else {} if len(session.tree.nodes) > 1 else None
        if reply is not None:
            role = reply.get("role", "assistant" if chat else "output")
            if role not in ("output", "assistant"):
                raise ValueError(f"a reply cannot have the role {role!r}")
            events = session.tree.events()
            finish = reply.get("finish", events[-1].finish_reason if events else None)
            if finish is not None and not isinstance(finish, str):
                raise ValueError("the reply's finish reason is not text")
            turns.append(Turn(role, events=events, finish=finish, tree=session.tree))
        prefix = extra.get("reply_prefix", [])
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in prefix):
            raise ValueError("reply_prefix holds something other than token ids")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise SessionFileError(f"{source} is damaged ({detail}); it cannot be opened") from exc
    transcript.turns = turns
    transcript.reply_prefix = list(prefix)
    transcript.prompt_scores = list(session.prompt_scores)
    return transcript


def bind_transcript(transcript: Transcript, tokenizer: Any, encode_chat: Any) -> None:
    """Tie a reopened transcript's token ids to the model they came from, so that continue,
    regenerate and branch reuse them (and the kv cache) instead of encoding the text again."""
    if not transcript.reply_prefix:
        before = transcript.turns[:-1] if transcript.reply is not None else transcript.turns
        if transcript.mode == "chat":
            transcript.reply_prefix = encode_chat(transcript.messages(before))
        else:
            transcript.reply_prefix = tokenizer.encode("".join(t.content for t in before))
    transcript.tokenizer = tokenizer


def _turn_to_json(turn: Turn) -> dict[str, Any]:
    return {
        "role": turn.role,
        "text": turn.text,
        "finish": turn.finish,
        "events": [event_to_json(e) for e in turn.events],
    }


def _turn_from_json(raw: dict[str, Any]) -> Turn:
    role = raw["role"]
    if role not in ROLES:
        raise ValueError(f"unknown turn role {role!r}")
    text = raw.get("text", "")
    if not isinstance(text, str):
        raise ValueError("a turn's text is not text")
    events = [event_from_json(e) for e in raw.get("events", [])]
    return Turn(role, text, events, raw.get("finish"))


# --- files ---------------------------------------------------------------------------------------


def default_session_dir() -> Path:
    """The user's documents folder when there is one, else the working directory."""
    from platformdirs import user_documents_dir  # only needed when a dialog opens

    documents = Path(user_documents_dir())
    return documents if documents.is_dir() else Path.cwd()


def default_session_path(now: datetime.datetime | None = None) -> Path:
    now = now or datetime.datetime.now()
    return default_session_dir() / f"gpt-tui-session-{now:%Y%m%d-%H%M%S}.json"


def session_paths(path: str | Path) -> tuple[Path, Path]:
    """Where the JSON and its Markdown export go for what the user typed: a folder gets a
    dated file name, a name without ".json" gets it."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / default_session_path().name
    if path.suffix.lower() != ".json":
        path = path.with_name(path.name + ".json")
    return path, path.with_suffix(".md")


def write_session(session: Session, path: str | Path) -> tuple[Path, Path]:
    """Write the session's JSON and, next to it, its Markdown export and its page (the `.md`
    path with `.html`); each atomically.

    Raises SessionFileError saying what was (not) written: the session in memory is untouched.
    """
    json_path, md_path = session_paths(path)
    try:
        json_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SessionFileError(
            f"cannot save the session in {json_path.parent}: {exc.strerror or exc}"
        ) from exc
    save(session, json_path)
    write_export(to_markdown(session), md_path, f"saved {json_path}, but not its Markdown export")
    html_path = md_path.with_suffix(".html")
    write_export(session_page(session), html_path, f"saved {json_path}, but not its page")
    return json_path, md_path


def write_export(text: str, path: Path, failure: str) -> Path:
    """Write `text` to `path` atomically; SessionFileError starts with `failure` when it cannot."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SessionFileError(f"{failure} {path.name}: {exc.strerror or exc}") from exc
    return path


def read_session(source: Session | str | Path) -> tuple[Session, Transcript, Path | None]:
    """A session (as given, or loaded from a file) and the transcript it shows.

    Raises SessionFileError for a damaged file, or one from a newer gpt-tui.
    """
    if isinstance(source, Session):
        return source, transcript_from_session(source), None
    path = Path(source).expanduser()
    session = load(path)
    return session, transcript_from_session(session, str(path)), path
