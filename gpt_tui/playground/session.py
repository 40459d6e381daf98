"""A playground session: model, settings, prompt and every continuation ever generated (the
branch tree of `playground/branches.py`), and its file format.

A session saves as JSON (lossless, reopened with `gpt-tui --open FILE`) and exports as Markdown
(for sharing). The tree's nodes are saved flat, each naming its parent, so a 5,000-token branch
is a list, not 5,000 levels of nested JSON (which Python's json module could not even write).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpt_tui.engine.events import TokenEvent
from gpt_tui.engine.sampling import SamplingParams
from gpt_tui.engine.scoring import Alternative, TokenScore
from gpt_tui.errors import SessionFileError
from gpt_tui.playground.branches import ROOT, BranchTree, Node

FORMAT = "gpt-tui-session"
VERSION = 1


@dataclass
class Session:
    model: str
    prompt: str
    sampling: SamplingParams = field(default_factory=SamplingParams)
    tree: BranchTree = field(default_factory=BranchTree)
    prompt_scores: list[TokenScore] = field(default_factory=list)
    chat: list[dict[str, str]] | None = None  # the messages, in chat mode
    extra: dict[str, Any] = field(default_factory=dict)  # the app's view state, kept as is


# --- JSON ----------------------------------------------------------------------------------------


def to_json(session: Session) -> dict[str, Any]:
    nodes = [
        {
            "parent": n.parent,
            "last_child": n.last_child,
            "event": None if n.event is None else event_to_json(n.event),
        }
        for n in session.tree.nodes
    ]
    return {
        "format": FORMAT,
        "version": VERSION,
        "model": session.model,
        "prompt": session.prompt,
        "sampling": _sampling_json(session.sampling),
        "chat": session.chat,
        "prompt_scores": [_score_json(s) for s in session.prompt_scores],
        "tree": {"current": session.tree.current, "nodes": nodes},
        "extra": session.extra,
    }


def from_json(data: Any, source: str = "the session") -> Session:
    """Rebuild a session, or raise SessionFileError saying what is wrong with `source`."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SessionFileError(f"{source} is not a gpt-tui session file")
    version = data.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise SessionFileError(
            f"{source} was written by a newer gpt-tui (format version {version}); this one "
            f"reads version {VERSION}: upgrade gpt-tui to open it"
        )
    try:
        tree = BranchTree()
        tree.nodes = []
        for i, raw in enumerate(data["tree"]["nodes"]):
            parent = raw["parent"]
            if (parent is None) != (i == ROOT) or (parent is not None and not 0 <= parent < i):
                raise ValueError(f"node {i} has an impossible parent {parent!r}")
            event = None if raw["event"] is None else event_from_json(raw["event"])
            if (event is None) != (i == ROOT):
                raise ValueError(f"node {i} lacks its token")
            tree.nodes.append(Node(parent=parent, event=event))
            if parent is not None:
                tree.nodes[parent].children.append(i)
        for node, raw in zip(tree.nodes, data["tree"]["nodes"], strict=True):
            last = raw.get("last_child")
            node.last_child = last if last in node.children else None
        current = data["tree"]["current"]
        if not isinstance(current, int) or not 0 <= current < len(tree.nodes):
            raise ValueError(f"current node {current!r} is not in the tree")
        tree.current = current
        chat = data.get("chat")
        if chat is not None and not all(
            isinstance(m, dict)
            and isinstance(m.get("role"), str)
            and isinstance(m.get("content"), str)
            for m in chat
        ):
            raise ValueError("chat messages need a role and a content")
        return Session(
            model=_typed(data["model"], str, "model"),
            prompt=_typed(data["prompt"], str, "prompt"),
            sampling=_sampling_from_json(data.get("sampling", {})),
            tree=tree,
            prompt_scores=[_score_from_json(s) for s in data.get("prompt_scores", [])],
            chat=chat,
            extra=data.get("extra") if isinstance(data.get("extra"), dict) else {},
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise SessionFileError(f"{source} is damaged ({detail}); it cannot be opened") from exc


def save(session: Session, path: Path) -> Path:
    """Write the session as JSON, atomically: a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        # allow_nan: NaN (a forced token's sampling probability) and -inf are part of the data
        tmp.write_text(json.dumps(to_json(session), ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SessionFileError(f"cannot save the session to {path}: {exc.strerror or exc}") from exc
    return path


def load(path: Path) -> Session:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SessionFileError(f"no session file at {path}") from exc
    except UnicodeDecodeError as exc:
        raise SessionFileError(f"{path} is not a gpt-tui session file (not UTF-8 text)") from exc
    except json.JSONDecodeError as exc:
        raise SessionFileError(
            f"{path} is damaged (invalid JSON at line {exc.lineno}, column {exc.colno})"
        ) from exc
    except OSError as exc:
        raise SessionFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return from_json(data, str(path))


# --- Markdown ------------------------------------------------------------------------------------


def to_markdown(session: Session) -> str:
    """A readable account: settings, the prompt, the current branch with its probabilities, and
    every other branch's text."""
    tree = session.tree
    s = session.sampling
    settings = (
        ", ".join(
            f"{f.name}={getattr(s, f.name)!r}"
            for f in dataclasses.fields(s)
            if getattr(s, f.name) != getattr(SamplingParams(), f.name)
        )
        or "defaults"
    )
    lines = [
        "# gpt-tui session",
        "",
        f"- model: `{session.model}`",
        f"- sampling: {settings}",
        f"- branches: {len(tree.leaves())}",
        "",
        "## Prompt",
        "",
        _fenced(session.prompt),
        "## Current branch",
        "",
        _fenced(session.prompt + tree.text()),
        "| # | token | probability | rank | top alternatives |",
        "|---:|---|---:|---:|---|",
    ]
    # Numbered along the branch: an event's own index counts from the start of its run.
    for n, event in enumerate(tree.events()):
        alternatives = ", ".join(f"`{_cell(a.text)}` {a.prob:.1%}" for a in event.top[:5])
        lines.append(
            f"| {n} | `{_cell(event.text)}` | {event.prob:.2%} | {event.rank} | {alternatives} |"
        )
    others = [leaf for leaf in tree.leaves() if leaf not in tree.path()]
    if others:
        lines += ["", "## Other branches", ""]
        for n, leaf in enumerate(others, 1):
            lines += [f"### Branch {n}", "", _fenced(session.prompt + tree.text(leaf))]
    return "\n".join(lines) + "\n"


def _fenced(text: str) -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}text\n{text}\n{fence}\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "↵").replace("`", "'")


# --- field codecs --------------------------------------------------------------------------------


def _typed(value: Any, kind: type | tuple[type, ...], name: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{name} has the wrong type ({type(value).__name__})")
    return value


def _alternatives_json(top: tuple[Alternative, ...]) -> list[list[Any]]:
    return [[a.token_id, a.text, a.prob] for a in top]


def _alternatives_from_json(raw: list) -> tuple[Alternative, ...]:
    return tuple(Alternative(int(t), _typed(text, str, "text"), float(p)) for t, text, p in raw)


def event_to_json(event: TokenEvent) -> dict[str, Any]:
    """A token event as JSON (the app keeps earlier chat replies' tokens this way, too)."""
    data = dataclasses.asdict(event)
    data["top"] = _alternatives_json(event.top)
    return data


def event_from_json(raw: dict[str, Any]) -> TokenEvent:
    """The event `event_to_json` wrote; TypeError/ValueError/KeyError if it is not one."""
    event = TokenEvent(**{**raw, "top": _alternatives_from_json(raw["top"])})
    _typed(event.token_id, int, "token_id")
    _typed(event.text, str, "text")
    for name in ("prob", "logprob", "sampled_prob", "entropy"):
        _typed(getattr(event, name), (int, float), name)
    return event


def _score_json(score: TokenScore) -> dict[str, Any]:
    data = dataclasses.asdict(score)
    data["top"] = _alternatives_json(score.top)
    return data


def _score_from_json(raw: dict[str, Any]) -> TokenScore:
    return TokenScore(**{**raw, "top": _alternatives_from_json(raw["top"])})


def _sampling_json(params: SamplingParams) -> dict[str, Any]:
    data = dataclasses.asdict(params)
    data["stop"] = list(params.stop)
    return data


def _sampling_from_json(raw: dict[str, Any]) -> SamplingParams:
    return SamplingParams(**{**raw, "stop": tuple(raw.get("stop", ()))})
