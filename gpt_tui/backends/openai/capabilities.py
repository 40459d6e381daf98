"""What a connected server can do, as the core reads it (`Capabilities`) and as the app and the
CLI show it (summary.py). Every missing feature carries its reason, one line."""

from __future__ import annotations

from gpt_tui.backends.base import SAMPLING_SETTINGS, Capabilities
from gpt_tui.backends.openai.probe import ProbeReport
from gpt_tui.backends.openai.servers import ServerKind, read_settings

LOOK_INSIDE = "look inside needs the local engine: a server does not share the model's activations"
INTERVENTIONS = (
    "interventions (ablation, steering, patching) need the local engine: a server does not let "
    "gpt-tui change the model's activations"
)
SPECULATIVE = "speculative decoding needs the local engine (a server runs its own, if it has one)"


def capabilities_of(kind: ServerKind, report: ProbeReport) -> Capabilities:
    """The probe's findings as the core reads them; every missing feature says why."""
    where = f"{kind.label} ({report.model})"
    unavailable: dict[str, str] = {
        "look_inside": LOOK_INSIDE,
        "speculative": SPECULATIVE,
        "interventions": INTERVENTIONS,
        "sampled_prob": "a server does not report a token's probability under its sampling "
        "settings (shown only for greedy decoding, where it is 1)",
        "entropy": "entropy from a server is a lower bound, from the alternatives it lists",
    }
    why = report.why
    if not report.completions:
        unavailable["completion"] = why.get("completion", f"{where} offers chat only")
    if not report.chat:
        unavailable["chat"] = why.get("chat", f"{where} has no working /v1/chat/completions")
    alternatives = report.alternatives if report.completions else report.chat_alternatives
    if alternatives == 0:
        reason = why.get("alternatives" if report.completions else "chat_alternatives")
        unavailable["alternatives"] = reason or f"{where} reports no token probabilities"
    if not report.echo_trusted:
        reason = why.get("prompt_scoring", f"{where} cannot score a prompt's tokens")
        unavailable["prompt_scoring"] = reason
    sampling = read_settings(kind)
    if report.seed is False:
        sampling.discard("seed")
        unavailable["seed"] = f"{where} does not honour seed (two equal seeds gave different text)"
    for name in SAMPLING_SETTINGS:
        if name not in sampling and name not in unavailable:
            reason = kind.why.get(name, f"{where} takes no such setting")
            unavailable[name] = f"{name.replace('_', ' ')}: {reason}"
    return Capabilities(
        completion=report.completions,
        chat=report.chat,
        alternatives=alternatives,
        prompt_scoring=report.echo_trusted,
        look_inside=False,
        speculative=False,
        batch=report.completions or report.chat,
        renders_chat=True,
        sampled_prob=False,
        entropy=False,
        exact_ranks=False,
        sampling=frozenset(sampling),
        unavailable=unavailable,
    )
