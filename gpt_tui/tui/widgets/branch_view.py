"""The loom: where the reply shown branches, and where each of its other branches went.

A reply's continuations form a tree (`gpt_tui.playground.branches.BranchTree`). Drawing the whole
tree would
not fit beside the text, and most of it is beside the point: what a reader needs is the forks
along the path they are reading. So each branch point of that path is a group of rows, one per
sibling, with "2/3" for which one it is and the start of the text it leads to:

    tok 6  ├─ 1/3 “ the cat sat on the mat”
           ├▶ 2/3 “ a dog ran into the”
           └─ 3/3 “ it was never”

The rows are an `OptionList`: picking one (enter or a click) posts `BranchSelected`, and the app
shows that branch. The widget is hidden while the reply has no fork.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from gpt_tui.playground.branches import BranchTree

LABEL_WIDTH = 8  # "tok 123 "


class BranchView(Vertical):
    """The branch points along the reply shown, and a preview of every sibling at each."""

    DEFAULT_CSS = """
        BranchView {
            height: auto;
            border: round $panel-lighten-2;
            border-title-color: $text-muted;
            border-subtitle-color: $text-muted;
            padding: 0 1;
        }
        BranchView:focus-within {
            border: round $accent;
            border-title-color: $accent;
        }
        BranchView #branches {
            height: auto;
            max-height: 7;
            border: none;
            padding: 0;
            background: transparent;
        }
    """

    class BranchSelected(Message):
        """The user picked the branch through `node` of the reply's tree."""

        def __init__(self, node: int) -> None:
            super().__init__()
            self.node = node

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.border_title = "Branches"
        self.loom: BranchTree | None = None
        self.focus_depth: int | None = None

    def compose(self) -> ComposeResult:
        yield OptionList(id="branches")

    def show(self, tree: BranchTree | None, focus_depth: int | None = None) -> None:
        """Draw the forks along `tree`'s current path; the one at or above token `focus_depth`
        of the reply (the selected token) is highlighted. Hidden when there is no fork."""
        self.loom, self.focus_depth = tree, focus_depth
        self._render_tree()

    @property
    def fork_count(self) -> int:
        return len(self.loom.branch_points()) if self.loom is not None else 0

    def on_resize(self) -> None:
        self._render_tree()

    def _render_tree(self) -> None:
        tree = self.loom
        forks = tree.branch_points() if tree is not None else []
        self.display = bool(forks)
        if tree is None or not forks:
            return
        branches = self.query_one("#branches", OptionList)
        width = max(24, branches.scrollable_content_region.width or self.size.width - 4)
        path = tree.path()
        options: list[Option] = []
        highlight = None
        for depth, which, count in forks:
            node = path[depth]
            if self.focus_depth is None or depth <= self.focus_depth or highlight is None:
                highlight = len(options) + which  # the fork nearest above the selection
            siblings = tree.siblings(node)
            for i, sibling in enumerate(siblings):
                label = f"tok {depth + 1}" if i == 0 else ""
                glyph = "└" if i == len(siblings) - 1 else "├"
                current = sibling == node
                preview = _preview(tree, sibling, depth, width - LABEL_WIDTH - 10)
                style = "bold $accent" if current else ""
                content = Content.assemble(
                    (label.ljust(LABEL_WIDTH), "dim"),
                    (glyph + ("▶" if current else "─"), "$accent" if current else "dim"),
                    (f" {i + 1}/{count} ", style or "dim"),
                    (f"“{preview}”", style),
                )
                options.append(Option(content, id=f"node-{sibling}"))
        branches.set_options(options)
        branches.highlighted = highlight
        self.border_subtitle = f"{len(forks)} fork{'s' if len(forks) != 1 else ''}"

    def on_option_list_option_selected(self, message: OptionList.OptionSelected) -> None:
        message.stop()
        if message.option_id is not None:
            self.post_message(self.BranchSelected(int(message.option_id.removeprefix("node-"))))


def _preview(tree: BranchTree, node: int, depth: int, width: int) -> str:
    """The text from `node` down the way last taken below it, on one line, cut to `width`."""
    events = tree.events(tree.leaf(node))[depth:]
    text = "".join(e.text for e in events).replace("\n", "↵")
    width = max(4, width)
    return text if len(text) <= width else text[: width - 1] + "…"
