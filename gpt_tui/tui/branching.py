"""The app's branching: take another token anywhere in the reply, and move about the branches.

A mixin of `GptTuiApp` (kept apart so app.py stays a map of the app). The reply's continuations
live in its turn's `BranchTree` (`Turn.tree`, filled by `Transcript.add_events`); this mixin
turns keys, the inspector's picks and the branch view's rows into moves in that tree, and
redraws the output from it.

Branching on token `i` asks the engine to go on from the reply prefix + the reply's first `i`
tokens + the token picked: the kv cache already holds that context up to the picked token, so
`generate` cuts the cache back to it instead of computing the prefix again.

In chat mode only the latest assistant reply branches: the messages before it are the context,
fixed once the next message is sent.

Textual calls a message's handlers in every class of the app's MRO: the `on_...` handlers here
run after those of `GptTuiApp` and `Generating`, and only add the branch view's upkeep.
"""

from __future__ import annotations

import dataclasses

from textual.widgets import OptionList

from gpt_tui.display import visible_token
from gpt_tui.engine import Alternative
from gpt_tui.session import forced_event
from gpt_tui.tui import messages as msg
from gpt_tui.tui.widgets.branch_view import BranchView
from gpt_tui.tui.widgets.inspector import TokenInspector
from gpt_tui.tui.widgets.output_view import OutputView

NOT_THE_REPLY = "Only the reply's tokens branch (in a chat, the latest reply's)"


class Branching:
    """Branching for `GptTuiApp`."""

    @property
    def branch_view(self) -> BranchView:
        return self.query_one("#branch-view", BranchView)

    # --- where the selection is in the reply -----------------------------------------------

    def _reply_start(self) -> int:
        """The output index of the reply's first token (earlier chat replies come before it)."""
        reply = self.transcript.reply
        return len(self.output.events) - (len(reply.events) if reply is not None else 0)

    def _reply_position(self, index: int | None) -> int | None:
        """The position in the reply of output token `index`; None if it is not the reply's."""
        reply = self.transcript.reply
        if index is None or reply is None:
            return None
        position = index - self._reply_start()
        return position if 0 <= position < len(reply.events) else None

    def _select_in_reply(self, position: int | None) -> None:
        self.output.select(None if position is None else self._reply_start() + position)

    def _branchable(self) -> bool:
        """Whether the reply's token ids belong to the model loaded (else they mean nothing)."""
        if not self._model_ready():
            return False
        if self.transcript.tokenizer is not self.loaded.tokenizer:
            self.notify(
                "This reply was written with another model's vocabulary: regenerate it to branch",
                severity="warning",
            )
            return False
        return True

    # --- taking another token --------------------------------------------------------------

    def action_pick_alternative(self, rank: int | None = None) -> None:
        """Highlight alternative `rank` (None: the token taken) of the selected token in the
        inspector, which gets the focus: enter (or a click) branches on it."""
        if self.output.selected is None:
            self.notify("Select a token of the reply first (click it, or ←/→ in the output)",
                        severity="warning")  # fmt: skip
            return
        if self._reply_position(self.output.selected) is None:
            self.notify(NOT_THE_REPLY, severity="warning")
            return
        if not self.inspector.highlight_alternative(rank):
            self.notify(f"The inspector lists no alternative {rank}", severity="warning")

    def _picking_keys_apply(self) -> bool:
        """Digits and enter pick alternatives only from the output and the alternatives list:
        elsewhere they type text or values."""
        focused = self.focused
        return isinstance(focused, OutputView) or (
            isinstance(focused, OptionList) and focused.id == "alternatives"
        )

    def on_token_inspector_alternative_picked(
        self, message: TokenInspector.AlternativePicked
    ) -> None:
        if message.control is self.inspector:  # not an inspector of the compare screen
            self.branch_on(message.index, message.alternative)

    def branch_on(self, index: int, alternative: Alternative) -> None:
        """Rewrite the reply from output token `index` with `alternative` and go on from it."""
        position = self._reply_position(index)
        reply = self.transcript.reply
        if position is None or reply is None:
            self.notify(NOT_THE_REPLY, severity="warning")
            return
        step = reply.events[position]
        if alternative.token_id == step.token_id:
            self.notify("That is the token already taken here", timeout=3)
            return
        if not self._branchable():
            return
        self.action_stop()  # a run still streaming would add its tokens to the new branch
        event = forced_event(step, alternative, alternative.text)
        ends = alternative.token_id in self.loaded.tokenizer.eos_ids
        if ends:
            event = dataclasses.replace(event, finish_reason="eos")
        context = self.transcript.branch_context(position, event)
        self._show_reply(position)
        self.output.focus()
        if context is None:
            self.notify(f"Back to the branch that took “{visible_token(alternative.text)}” here",
                        timeout=3)  # fmt: skip
        elif ends:
            self._set_state("eos")
        else:
            self._start_run(context)

    # --- moving between branches -----------------------------------------------------------

    def action_sibling(self, step: int) -> None:
        """Show the previous (-1) or next (1) branch at the fork nearest above the selected
        token (no selection: the last fork)."""
        reply = self.transcript.reply
        fork = self._fork_above(self._reply_position(self.output.selected))
        if reply is None or fork is None:
            self.notify("No other branch here: pick an alternative in the inspector to make one",
                        timeout=3)  # fmt: skip
            return
        node = reply.tree.path()[fork]
        siblings = reply.tree.siblings(node)
        self.show_branch(siblings[(siblings.index(node) + step) % len(siblings)])

    def action_branch_point(self, direction: int) -> None:
        """Select the token where the reply forks before (-1) or after (1) the selected one."""
        reply = self.transcript.reply
        forks = [depth for depth, _, _ in reply.tree.branch_points()] if reply else []
        position = self._reply_position(self.output.selected)
        if direction < 0:
            targets = [d for d in forks if position is None or d < position]
            target = max(targets, default=None)
        else:
            targets = [d for d in forks if position is None or d > position]
            target = min(targets, default=None)
        if target is None:
            where = "above" if direction < 0 else "below"
            self.notify(f"No branch point {where} this token", timeout=3)
            return
        self._select_in_reply(target)

    def on_branch_view_branch_selected(self, message: BranchView.BranchSelected) -> None:
        self.show_branch(message.node)

    def show_branch(self, node: int) -> None:
        """Show the reply's branch through `node`, with its first token selected."""
        reply = self.transcript.reply
        if reply is None:
            return
        self.action_stop()  # tokens still streaming belong to the branch being left
        depth = len(reply.tree.path(node)) - 1
        self.transcript.show_branch(node)
        self._show_reply(depth)
        if self.loaded is not None and self.state != "loading":
            self._set_state(reply.finish or "idle")

    def _fork_above(self, position: int | None) -> int | None:
        """The depth of the fork at or above reply token `position` (None: the last fork)."""
        reply = self.transcript.reply
        forks = [depth for depth, _, _ in reply.tree.branch_points()] if reply else []
        above = [d for d in forks if position is None or d <= position]
        return max(above, default=None)

    def _show_reply(self, position: int | None) -> None:
        """Draw the transcript again (the reply is another branch now), selecting a token."""
        self.output.show_transcript(self.transcript, self._assistant_name())
        self._select_in_reply(position)
        self._update_branch_view()

    # --- the branch view's upkeep ----------------------------------------------------------

    def _update_branch_view(self) -> None:
        reply = self.transcript.reply
        position = self._reply_position(self.output.selected)
        self.branch_view.show(reply.tree if reply is not None else None, position)

    def on_output_view_token_selected(self, message: OutputView.TokenSelected) -> None:
        self._update_branch_view()  # the fork nearest the selection is highlighted

    def on_tokens_streamed(self, message: msg.TokensStreamed) -> None:
        # A regenerated reply forks at its first token; later tokens only lengthen a branch.
        reply = self.transcript.reply
        first = reply is not None and len(reply.events) == len(message.events)
        if message.run_id == self._run_id and first:
            self._update_branch_view()

    def on_generation_done(self, message: msg.GenerationDone) -> None:
        if message.run_id == self._run_id:
            self._update_branch_view()
