"""What the playground shows and continues from: a transcript of turns.

Pure data, no Textual: the app keeps one `Transcript` and the output view draws it. (Saving and
reopening, with every branch, is `gpt_tui.session`'s business.)

A transcript is a list of turns. In completion mode: the prompt, then the model's output. In chat
mode: user and assistant messages, each assistant message streamed by the model. The last turn,
when it is the model's, is the *reply*: continue extends it, regenerate replaces it. Both reuse the
kv cache, because the context they ask for starts with the ids the reply was generated after.

After a switch to a model with another tokenizer those ids mean nothing: the context is encoded
again from the text, and a continuation goes into a new turn, so that no turn mixes the ids of
two vocabularies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from gpt_tui.engine import TokenEvent

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
        self.turns = [Turn("prompt", prompt), Turn("output")]
        self.reply_prefix = list(prompt_ids)
        self.tokenizer = tokenizer
        return list(prompt_ids)

    def start_chat_reply(self, message: str, chat: ChatEncoder, tokenizer: Any) -> list[int]:
        """Add the user's message and an empty assistant reply; returns the context."""
        if self.mode != "chat":
            self.clear(mode="chat")
        self.turns += [Turn("user", message), Turn("assistant")]
        self.reply_prefix = chat(self.messages(self.turns[:-1]))
        self.tokenizer = tokenizer
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
            return list(self.reply_prefix)
        return self.reply_prefix + reply.token_ids

    def regenerate_context(self, tokenizer: Any, text: TextEncoder, chat: ChatEncoder) -> list[int]:
        """Empty the reply; returns the context it follows."""
        reply = self.reply
        if reply is None:
            raise ValueError("there is nothing to regenerate yet")
        reply.events.clear()
        reply.finish = None
        if tokenizer is not self.tokenizer:
            self.reply_prefix = self._encode_before_reply(text, chat)
            self.tokenizer = tokenizer
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
        reply.events.extend(events)

    def finish_reply(self, finish: str) -> None:
        if self.reply is not None:
            self.reply.finish = finish
