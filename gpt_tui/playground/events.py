"""What the playground core tells its front end while a run goes on.

A run's worker (a thread of the app, or the CLI's own loop) hands these to `emit`; the front
end gives each back to `Playground.receive` on its own thread, which applies it to the
transcript unless the run was replaced or stopped meanwhile (its id is old), and then draws.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpt_tui.engine import TokenEvent, TokenScore
from gpt_tui.playground.streaming import RunStats


@dataclass(frozen=True)
class TokensStreamed:
    run_id: int
    events: list[TokenEvent]
    stats: RunStats


@dataclass(frozen=True)
class PromptScored:
    """The prompt tokens' scores, computed by the prefill of the run."""

    run_id: int
    scores: list[TokenScore]


@dataclass(frozen=True)
class RunNotice:
    """Something the user should know that does not stop the run (a setting used without)."""

    run_id: int
    text: str


@dataclass(frozen=True)
class RunFinished:
    """The run ended: `finish` is "length", "eos", "stop", "user" or "error" (with `error`)."""

    run_id: int
    finish: str
    stats: RunStats
    error: str | None = None


RunEvent = TokensStreamed | PromptScored | RunNotice | RunFinished
