"""What the playground shows and continues from: a transcript of turns.

Pure data, no Textual: the app keeps one `Transcript` and the output view draws it. (Saving and
reopening, with every branch, is `gpt_tui.playground.session`'s business.)

A transcript is a list of turns. In completion mode: the prompt, then the model's output. In chat
mode: user and assistant messages, each assistant message streamed by the model. The last turn,
when it is the model's, is the *reply*: continue extends it, regenerate replaces it. Both reuse the
kv cache, because the context they ask for starts with the ids the reply was generated after.
Nothing generated for the reply is lost: its turn's `tree` keeps every continuation (a regenerated
reply is a sibling at the root, a branch on another token a sibling at that token), and `events`
is the path shown.

After a switch to a model with another tokenizer those ids mean nothing: the context is encoded
again from the text, and a continuation goes into a new turn, so that no turn mixes the ids of
two vocabularies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from gpt_tui.engine import TokenEvent, TokenScore
from gpt_tui.playground.branches import ROOT, BranchTree

Mode = Literal["completion", "chat"]
Role = Literal["prompt", "output", "system", "user", "assistant"]

#: Chat messages -> token ids ending with the cue for the assistant's reply.
ChatEncoder = Callable[[list[dict[str, str]]], list[int]]
#: Plain text -> token ids.
TextEncoder = Callable[[str], list[int]]


@dataclass
class Turn:
    role: Role
    text: str = ""  # what the user wrote (prompt, user, system turns)
    events: list[TokenEvent] = field(default_factory=list)  # the model's tokens (replies)
    finish: str | None = None  # why the reply stopped: "length", "eos", "stop", "user", "error"
    # A reply's every continuation (regenerated, branched); `events` is the path shown.
    tree: BranchTree = field(default_factory=BranchTree, compare=False, repr=False)

    @property
    def is_reply(self) -> bool:
        return self.role in ("output", "assistant")

    @property
    def token_ids(self) -> list[int]:
        return [e.token_id for e in self.events]

    @property
    def content(self) -> str:
        return "".join(e.text for e in self.events) if self.is_reply else self.text


@dataclass
class Transcript:
    mode: Mode = "completion"
    turns: list[Turn] = field(default_factory=list)
    reply_prefix: list[int] = field(default_factory=list)  # the ids the reply follows
    tokenizer: Any = None  # the tokenizer `reply_prefix` and the reply's ids belong to
    # What the model thought of the tokens the reply follows, by position in `reply_prefix`
    # (sorted; the first token has no score: nothing precedes it). See `add_prompt_scores`.
    prompt_scores: list[TokenScore] = field(default_factory=list)

    @property
    def reply(self) -> Turn | None:
        return self.turns[-1] if self.turns and self.turns[-1].is_reply else None

    @property
    def events(self) -> list[TokenEvent]:
        """Every generated token, in the order shown."""
        return [e for t in self.turns for e in t.events]

    @property
    def is_empty(self) -> bool:
        return not self.turns

    def clear(self, mode: Mode | None = None) -> None:
        self.turns = []
        self.reply_prefix = []
        self.tokenizer = None
        self.prompt_scores = []
        if mode is not None:
            self.mode = mode

    def text(self) -> str:
        """The whole document as plain text (what "copy output" copies)."""
        if self.mode == "completion":
            return "".join(t.content for t in self.turns)
        out = []
        for message in self.messages():
            out.append(f"{message['role']}: {message['content']}")
        return "\n\n".join(out)

    def messages(self, turns: Sequence[Turn] | None = None) -> list[dict[str, str]]:
        """Chat messages for a template; consecutive assistant turns are one message."""
        out: list[dict[str, str]] = []
        for t in self.turns if turns is None else turns:
            if t.role not in ("system", "user", "assistant"):
                continue
            if t.role == "assistant" and out and out[-1]["role"] == "assistant":
                out[-1]["content"] += t.content
            else:
                out.append({"role": t.role, "content": t.content})
        return out

    # --- starting, continuing, regenerating a reply ---------------------------------------

    def start_completion(self, prompt: str, prompt_ids: list[int], tokenizer: Any) -> list[int]:
        """A new document: the prompt and an empty output. Returns the context to generate from."""
        self.mode = "completion"
        known = self._known_scores(tokenizer)
        self.turns = [Turn("prompt", prompt), Turn("output")]
        self.reply_prefix = list(prompt_ids)
        self.tokenizer = tokenizer
        self._keep_scores(known)
        return list(prompt_ids)

    def start_chat_reply(self, message: str, chat: ChatEncoder, tokenizer: Any) -> list[int]:
        """Add the user's message and an empty assistant reply; returns the context."""
        if self.mode != "chat":
            self.clear(mode="chat")
        known = self._known_scores(tokenizer)
        self.turns += [Turn("user", message), Turn("assistant")]
        self.reply_prefix = chat(self.messages(self.turns[:-1]))
        self.tokenizer = tokenizer
        self._keep_scores(known)
        return list(self.reply_prefix)

    def continue_context(self, tokenizer: Any, text: TextEncoder, chat: ChatEncoder) -> list[int]:
        """The context that extends the reply: what it follows, plus the reply itself."""
        reply = self.reply
        if reply is None:
            raise ValueError("there is nothing to continue yet")
        if tokenizer is not self.tokenizer:
            # Continue in a new turn of the same role, after the whole text so far.
            self.turns.append(Turn(reply.role))
            self.reply_prefix = self._encode_before_reply(text, chat)
            self.tokenizer = tokenizer
            self.prompt_scores = []  # another model's scores
            return list(self.reply_prefix)
        return self.reply_prefix + reply.token_ids

    def regenerate_context(self, tokenizer: Any, text: TextEncoder, chat: ChatEncoder) -> list[int]:
        """Empty the reply; returns the context it follows."""
        reply = self.reply
        if reply is None:
            raise ValueError("there is nothing to regenerate yet")
        reply.events.clear()
        reply.finish = None
        reply.tree.current = ROOT  # the new reply is a sibling of the old ones, which stay
        if tokenizer is not self.tokenizer:
            self.reply_prefix = self._encode_before_reply(text, chat)
            self.tokenizer = tokenizer
            self.prompt_scores = []  # another model's scores
        return list(self.reply_prefix)

    def _encode_before_reply(self, text: TextEncoder, chat: ChatEncoder) -> list[int]:
        """Ids of everything before the last turn, encoded afresh from the text."""
        before = self.turns[:-1]
        if self.mode == "completion":
            return text("".join(t.content for t in before))
        # Assistant turns just before the reply are the start of the same message: the template
        # cues a new assistant message after the others, and their text follows the cue.
        k = len(before)
        while k > 0 and before[k - 1].role == "assistant":
            k -= 1
        started = "".join(t.content for t in before[k:])
        return chat(self.messages(before[:k])) + (text(started) if started else [])

    # --- receiving tokens ------------------------------------------------------------------

    def add_events(self, events: Sequence[TokenEvent]) -> None:
        reply = self.reply
        if reply is None:
            raise ValueError("no reply is being generated")
        tree = reply.tree
        for event in events:
            node = tree.add(tree.current, event)
            tree.nodes[node].event = event  # a token sampled again: keep the newest view of it
            tree.current = node
            reply.events.append(event)

    def finish_reply(self, finish: str) -> None:
        if self.reply is not None:
            self.reply.finish = finish

    # --- branches of the reply -------------------------------------------------------------
    # The output view numbers every generated token in the order shown (`events`); the reply's
    # tree numbers only the reply's, from its first. In a chat earlier replies come first.

    def reply_start(self) -> int:
        """The index in `events` of the reply's first token."""
        reply = self.reply
        return len(self.events) - (len(reply.events) if reply is not None else 0)

    def reply_position(self, index: int | None) -> int | None:
        """The position in the reply of token `index` of `events`; None if it is not the
        reply's."""
        reply = self.reply
        if index is None or reply is None:
            return None
        position = index - self.reply_start()
        return position if 0 <= position < len(reply.events) else None

    def event_index(self, position: int | None) -> int | None:
        """The index in `events` of the reply's token `position` (None for None)."""
        return None if position is None else self.reply_start() + position

    def fork_point(self, position: int) -> tuple[BranchTree, int]:
        """The reply's tree and the node a token at reply `position` branches below (the token
        before it on the branch shown, or the root)."""
        reply = self.reply
        if reply is None:
            raise ValueError("there is no reply to branch")
        path = reply.tree.path()
        if not 0 <= position < len(path):
            raise IndexError(f"the reply has no token {position}")
        return reply.tree, (path[position - 1] if position else ROOT)

    def branch_context(self, position: int, event: TokenEvent) -> list[int] | None:
        """Take `event` (another token) at `position` of the reply instead of the one shown.

        Returns the context to go on from: what the reply follows, the reply up to `position`
        and the new token. That context starts with what the kv cache holds, so the cache is
        cut back to `position`, not recomputed. None when that token was taken there before:
        its branch is shown instead, as it was left.
        """
        tree, parent = self.fork_point(position)
        for child in tree.nodes[parent].children:
            if tree.nodes[child].event.token_id == event.token_id:  # type: ignore[union-attr]
                self.show_branch(child)
                return None
        reply = self.reply
        assert reply is not None  # fork_point found it
        tree.current = tree.add(parent, event)
        reply.events = tree.events()
        reply.finish = event.finish_reason
        return self.reply_prefix + tree.token_ids()

    def show_branch(self, node: int) -> None:
        """Show the branch through `node` of the reply's tree, down the way last taken below it."""
        reply = self.reply
        if reply is None:
            raise ValueError("there is no reply to show")
        reply.tree.select(reply.tree.leaf(node))
        reply.events = reply.tree.events()
        last = reply.events[-1] if reply.events else None
        # A leaf without a finish reason was stopped by the user (or is the root: no reply yet).
        reply.finish = None if last is None else (last.finish_reason or "user")

    # --- scores of the prompt --------------------------------------------------------------

    def add_prompt_scores(self, scores: Sequence[TokenScore]) -> bool:
        """Merge the scores a prefill computed; returns whether any prompt token got one.

        The prefill scores only the tokens the kv cache did not hold yet (positions index the
        context a run started from), so the scores of the cached prefix are kept from earlier
        runs. Scores past the prompt (a continuation re-reads the reply's last token) are the
        reply's, already in its events: dropped here.
        """
        new = {s.position: s for s in scores if s.position < len(self.reply_prefix)}
        if not new:
            return False
        kept = [s for s in self.prompt_scores if s.position not in new]
        self.prompt_scores = sorted([*kept, *new.values()], key=lambda s: s.position)
        return True

    def prompt_scored_length(self, first: int = 1) -> int:
        """How many leading tokens of `reply_prefix` have their score, counting from `first`
        (the first with a prediction: 1, or past the start a too-long prompt loses).

        A run must not reuse more of the kv cache than this: the prefill scores only what it
        computes, and a token the cache held past this point would stay unscored.
        """
        have = {s.position for s in self.prompt_scores}
        n = min(first, len(self.reply_prefix))
        while n < len(self.reply_prefix) and n in have:
            n += 1
        return n

    def _known_scores(self, tokenizer: Any) -> tuple[list[int], list[TokenScore]]:
        """The ids scored so far (prompt, then reply) and their scores, before a new prompt
        replaces them; nothing when the model changed (its scores say nothing of this one)."""
        if tokenizer is not self.tokenizer or not self.reply_prefix:
            return [], []  # (an empty prompt's reply followed <|endoftext|>, not in the ids)
        ids, scores = list(self.reply_prefix), list(self.prompt_scores)
        reply = self.reply
        for event in reply.events if reply is not None else ():
            if event.dropped:  # the window slid: later tokens saw a shorter context
                break
            ids.append(event.token_id)
            scores.append(self._event_score(len(ids) - 1, event))
        return ids, scores

    def _keep_scores(self, known: tuple[list[int], list[TokenScore]]) -> None:
        """Keep the known scores of the tokens the new `reply_prefix` shares with the old
        context: the kv cache holds those, so the next prefill will not score them again."""
        old_ids, scores = known
        n = 0
        for a, b in zip(old_ids, self.reply_prefix, strict=False):
            if a != b:
                break
            n += 1
        self.prompt_scores = [s for s in scores if s.position < n]

    def _event_score(self, position: int, event: TokenEvent) -> TokenScore:
        """A generated token's event as the score it gets when read back as part of a prompt
        (same context, same logits)."""
        token_text = getattr(self.tokenizer, "token_text", None)
        text = token_text(event.token_id) if token_text is not None else event.text
        return TokenScore(position, event.token_id, text, event.prob, event.logprob, event.rank,
                          event.entropy, event.top)  # fmt: skip
