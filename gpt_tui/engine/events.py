"""What generation yields: one `TokenEvent` per token, and why a generation stopped."""

from __future__ import annotations

from dataclasses import dataclass

from gpt_tui.engine.scoring import Alternative

FINISH_REASONS = {
    "length": "max tokens",
    "eos": "end of text",
    "stop": "stop string",
    "rewinds": "too many rewinds for banned strings",
    "banned": "a banned string (cut there)",
}


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """One generated token and what the model thought of it.

    `prob`, `logprob`, `rank` (1 = the likeliest), `entropy` (nats) and `top` describe the model's
    own distribution at this step; `sampled_prob` is the token's probability under the final
    sampling distribution (after penalties, temperature, top-k/p, min-p). `text` is the piece of
    output this token completes: "" while a UTF-8 character is still incomplete, cut short where a
    stop string begins. `dropped` counts tokens the context window slid past before this step.
    `finish_reason` is set on the last event: "length", "eos", "stop", "rewinds" (banned strings
    made the run rewind more than `generate.MAX_REWINDS_AT_A_POSITION` times at one position or
    `MAX_REWINDS_PER_RUN` in all: the text is cut where the banned string began), or "banned" (a
    branch the sampler view expanded, cut where a banned string began: a batch cannot rewind).
    `rewinds` counts the draws at this position that were undone because a banned string began
    in them (each drawn again without the token it began with); `rewound` is the text last
    undone here, from this position to where the banned string ended, for a front end to show.
    """

    index: int
    token_id: int
    text: str
    prob: float
    logprob: float
    sampled_prob: float
    rank: int
    entropy: float
    top: tuple[Alternative, ...]
    position: int
    dropped: int = 0
    finish_reason: str | None = None
    rewinds: int = 0
    rewound: str = ""
