"""A connected server in words: what it can and cannot do (`gpt-tui models URL`), and the app's
status line."""

from __future__ import annotations

from gpt_tui.backends.base import SAMPLING_SETTINGS
from gpt_tui.backends.openai.backend import OpenAIBackend, display_name


def describe(backend: OpenAIBackend) -> list[str]:
    """Lines for `gpt-tui models URL` and the status line: what works, then what does not."""
    caps, report = backend.capabilities, backend.report
    lines = [f"{backend.kind.label} at {backend.client.base_url}, model {backend.model}"]
    works = []
    if caps.completion:
        works.append(f"completions with {caps.alternatives} alternatives per token")
    if caps.chat:
        works.append(
            f"chat with {report.chat_alternatives} alternatives"
            if report.chat_alternatives
            else "chat (no logprobs)"
        )
    if caps.prompt_scoring:
        works.append(
            "prompt scoring (agrees with its generation logprobs within "
            f"{report.echo_error:.3f} nats)"
        )
    lines.append("can: " + "; ".join(works) if works else "can: nothing that was tried")
    lines.append("sampling: " + ", ".join(s for s in SAMPLING_SETTINGS if s in caps.sampling))
    for feature in (
        "completion",
        "chat",
        "alternatives",
        "prompt_scoring",
        "look_inside",
        "speculative",
    ):
        why = caps.why_not(feature)
        if why:
            lines.append(f"not here: {why}")
    for name in SAMPLING_SETTINGS:
        why = caps.why_not(name)
        if why:
            lines.append(f"not here: {why}")
    lines.extend(
        f"note: {n}" for n in (*backend.kind.notes, *report.notes) if n not in "\n".join(lines)
    )
    return lines


def status_line(backend: OpenAIBackend) -> str:
    """One line for the app's status bar: where, and what is missing."""
    caps = backend.capabilities
    parts = [f"{backend.kind.label}: {display_name(backend.model)}"]
    parts.append(f"{caps.alternatives} alternatives" if caps.alternatives else "no probabilities")
    if not caps.prompt_scoring:
        parts.append("no prompt scores")
    parts.append("no look inside")
    return " · ".join(parts)
