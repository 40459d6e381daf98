"""A playground session: model, settings, prompt and every continuation ever generated.

Continuations form a tree of tokens (a "loom"): the prompt is the root, each node one generated
token with what the model thought of it. Generating again, or branching on an alternative,
adds a path; nothing is thrown away. A session saves as JSON (lossless, reopened with
`gpt-tui --open FILE`) and exports as Markdown (for sharing).

Nodes are stored flat, each naming its parent, so a 5,000-token branch is a list, not 5,000
levels of nested JSON (which Python's json module could not even write).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpt_tui.engine.generate import TokenEvent
from gpt_tui.engine.sampling import SamplingParams
from gpt_tui.engine.scoring import Alternative, TokenScore
from gpt_tui.errors import SessionFileError

FORMAT = "gpt-tui-session"
VERSION = 1
ROOT = 0


@dataclass
class Node:
    parent: int | None  # None only for the root (the prompt)
    event: TokenEvent | None  # None only for the root
    children: list[int] = field(default_factory=list)
    last_child: int | None = None  # the branch last visited below this node: where "down" goes


class BranchTree:
    """Every continuation of one prompt, as a tree of generated tokens."""

    def __init__(self) -> None:
        self.nodes: list[Node] = [Node(parent=None, event=None)]
        self.current = ROOT  # the node whose path is shown

    def add(self, parent: int, event: TokenEvent) -> int:
        """Append a token below `parent`; the same token there again is the same node."""
        for child in self.nodes[parent].children:
            if self.nodes[child].event.token_id == event.token_id:  # type: ignore[union-attr]
                self.nodes[parent].last_child = child
                return child
        self.nodes.append(Node(parent=parent, event=event))
        node = len(self.nodes) - 1
        self.nodes[parent].children.append(node)
        self.nodes[parent].last_child = node
        return node

    def path(self, node: int | None = None) -> list[int]:
        """Node ids from the first generated token down to `node` (default: the current one)."""
        node = self.current if node is None else node
        out = []
        while node != ROOT:
            out.append(node)
            node = self.nodes[node].parent  # type: ignore[assignment]
        return out[::-1]

    def events(self, node: int | None = None) -> list[TokenEvent]:
        return [self.nodes[n].event for n in self.path(node)]  # type: ignore[misc]

    def token_ids(self, node: int | None = None) -> list[int]:
        return [event.token_id for event in self.events(node)]

    def text(self, node: int | None = None) -> str:
        return "".join(event.text for event in self.events(node))

    def leaf(self, node: int) -> int:
        """Follow the last visited branch from `node` down to its end."""
        while (child := self.nodes[node].last_child) is not None:
            node = child
        return node

    def leaves(self) -> list[int]:
        return [i for i, n in enumerate(self.nodes) if i != ROOT and not n.children]

    def siblings(self, node: int) -> list[int]:
        parent = self.nodes[node].parent
        return [node] if parent is None else list(self.nodes[parent].children)

    def select(self, node: int) -> None:
        """Make `node`'s path the current one, remembering the way down to it."""
        if not 0 <= node < len(self.nodes):
            raise ValueError(f"no node {node} in this tree")
        self.current = node
        while (parent := self.nodes[node].parent) is not None:
            self.nodes[parent].last_child = node
            node = parent

    def branch_points(self, node: int | None = None) -> list[tuple[int, int, int]]:
        """Along a path: (depth, which sibling, how many) wherever the tree forks."""
        out = []
        for depth, n in enumerate(self.path(node)):
            siblings = self.siblings(n)
            if len(siblings) > 1:
                out.append((depth, siblings.index(n), len(siblings)))
        return out


def forced_event(step: TokenEvent, choice: Alternative, text: str) -> TokenEvent:
    """The event for taking one of a step's alternatives instead of the token it sampled.

    The model's distribution at that step is the same; only the token differs. It was chosen by
    the user, not drawn, so its sampling probability is undefined (NaN).
    """
    rank = next((i + 1 for i, a in enumerate(step.top) if a.token_id == choice.token_id), 0)
    return dataclasses.replace(
        step,
        token_id=choice.token_id,
        text=text,
        prob=choice.prob,
        logprob=math.log(choice.prob) if choice.prob > 0 else -math.inf,
        sampled_prob=math.nan,
        rank=rank,
        finish_reason=None,
    )


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
