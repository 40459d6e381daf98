"""A session written by hand, the same on every machine: the shared page's tests and its
reference screenshot need tokens that no floating-point difference can change."""

from __future__ import annotations

from gpt_tui.engine import SamplingParams, TokenEvent
from gpt_tui.engine.scoring import Alternative, TokenScore
from gpt_tui.playground.branches import ROOT, BranchTree
from gpt_tui.playground.session import Session

# (text, probability, rank, the alternatives: text and probability, the chosen one among them)
HAND_TOKENS = [
    (" blue", 0.62, 1, [(" blue", 0.62), (" clear", 0.11), (" dark", 0.05), (" grey", 0.03)]),
    (" and", 0.31, 1, [(" and", 0.31), (",", 0.24), (".", 0.2), (" today", 0.04)]),
    (" the", 0.18, 2, [(" it", 0.22), (" the", 0.18), (" there", 0.09), (" I", 0.05)]),
    (" sun", 0.4, 1, [(" sun", 0.4), (" clouds", 0.2), (" air", 0.06), (" wind", 0.05)]),
    (" <script>", 0.004, 37, [(" is", 0.5), (" shines", 0.1), (" was", 0.05), (" has", 0.04)]),
    ("alert(1)", 0.0008, 412, [("\n", 0.3), (" is", 0.2), ("!", 0.1), (" the", 0.05)]),
    ("</script>", 0.02, 8, [("\n", 0.4), (" &", 0.1), (".", 0.08), (" and", 0.02)]),
    (" is", 0.07, 4, [(".", 0.33), (",", 0.2), ("\n", 0.12), (" is", 0.07)]),
    (" warm", 0.09, 3, [(" bright", 0.2), (" high", 0.1), (" warm", 0.09), (" out", 0.08)]),
    (".", 0.55, 1, [(".", 0.55), (",", 0.15), (" and", 0.1), ("!", 0.02)]),
]
# The prompt's tokens after its first (" sky", " is"), as scored when it was generated from.
PROMPT_SCORES = [
    (" sky", 0.012, 14, [(" first", 0.1), (" same", 0.05), (" sky", 0.012)]),
    (" is", 0.35, 1, [(" is", 0.35), (" was", 0.2), ("'s", 0.1)]),
]
BRANCH_TOKENS = [(" grey", 0.03, 4, [(" blue", 0.62), (" clear", 0.11), (" grey", 0.03)])]


def hand_event(i: int, text: str, prob: float, rank: int, top: list) -> TokenEvent:
    alternatives = tuple(
        Alternative(1000 + sum(map(ord, t)), t, p) for t, p in top
    )  # an id per text, so the chosen token is found among its alternatives
    return TokenEvent(
        index=i, token_id=1000 + sum(map(ord, text)), text=text, prob=prob, logprob=0.0,
        sampled_prob=prob, rank=rank, entropy=1.0, top=alternatives, position=3 + i,
    )  # fmt: skip


def hand_score(i: int, text: str, prob: float, rank: int, top: list) -> TokenScore:
    event = hand_event(i, text, prob, rank, top)
    return TokenScore(
        position=1 + i, token_id=event.token_id, text=text, prob=prob, logprob=0.0, rank=rank,
        entropy=1.0, top=event.top,
    )  # fmt: skip


def hand_session() -> Session:
    tree = BranchTree()
    node = ROOT
    for i, token in enumerate(BRANCH_TOKENS):
        node = tree.add(node, hand_event(i, *token))
    node = ROOT
    for i, token in enumerate(HAND_TOKENS):
        node = tree.add(node, hand_event(i, *token))
    tree.select(node)
    return Session(
        model="tiny <b>model</b>",
        prompt="The sky is",
        sampling=SamplingParams(temperature=0.8, top_k=40, max_tokens=10),
        tree=tree,
        prompt_scores=[hand_score(i, *score) for i, score in enumerate(PROMPT_SCORES)],
    )
