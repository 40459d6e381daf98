"""The branch tree of a reply (a "loom"): every continuation ever generated, nothing thrown away.

The prompt is the root, each node one generated token with what the model thought of it.
Generating again, or branching on an alternative, adds a path. Nodes are stored flat, each naming
its parent, so a 5,000-token branch is a list, not 5,000 levels of nesting.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from gpt_tui.engine.events import TokenEvent
from gpt_tui.engine.scoring import Alternative

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
