"""The kinds of OpenAI-compatible server, how to tell them apart, and what each takes.

The OpenAI API defines temperature, top_p, the presence and frequency penalties, seed, max_tokens
and stop. The local servers add more under their own names (`repetition_penalty` in vLLM,
`repeat_penalty` in llama.cpp), and most of them ignore a field they do not know without a word:
so a setting is sent only under a name the server is known to read, and a setting with no name
there is reported as not available, never dropped silently. Every known name is sent with the
app's value even when that value is "off", because the servers' own defaults are not off
(llama.cpp's servers sample with top_k 40 and min_p 0.05 unless told otherwise).

Sources, per kind (checked against each project's code, not guessed):
- vLLM: `vllm/entrypoints/openai/completion/protocol.py` (CompletionRequest: top_k, min_p,
  repetition_penalty, seed, echo, prompt_logprobs; logprobs capped by --max-logprobs, 20).
- llama.cpp's llama-server: `tools/server/server-task.cpp` (params_from_json_cmpl: top_k, min_p,
  repeat_penalty, repeat_last_n, seed; `logprobs` -> n_probs) and `server-common.cpp` ("Only no
  echo is supported"; ggml-org/llama.cpp#27174: no prompt logprobs). Its logprobs come as
  {"content": [...]} with token ids.
- llama-cpp-python: `llama_cpp/server/types.py` (top_k, min_p, repeat_penalty, seed, echo,
  logprobs), verified against the real server in tests/backends/.
- Ollama: `openai/openai.go` (CompletionRequest has no top_k, min_p or repeat_penalty; the
  model's own options apply; logprobs since 0.12; no echo field, so an echo comes back without
  the prompt).
Whether a server echoes a prompt with its logprobs is never assumed: the probe asks each one.
- OpenAI: the API reference (no top_k, min_p or repetition penalty; up to 5 logprobs on the
  legacy completions endpoint, 20 top_logprobs on chat).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gpt_tui.engine import SamplingParams

STANDARD = {
    "temperature": "temperature",
    "top_p": "top_p",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "seed": "seed",
    "max_tokens": "max_tokens",
}


@dataclass(frozen=True)
class ServerKind:
    """One kind of server: the request field of each sampling setting it reads, and its limits.

    `params` maps a SamplingParams field to the request field; a setting missing from it is not
    available. `stop` is always available: stop strings are applied here, on the streamed text,
    with the engine's own rule (the server's rule differs from one kind to the next).
    `parallel`: how many requests may run at once (compare columns); `tokenize`: the path of an
    endpoint that splits text into token pieces, or None.
    """

    name: str
    label: str
    params: dict[str, str] = field(default_factory=lambda: dict(STANDARD))
    max_logprobs: int = 20
    tokenize: str | None = None
    parallel: int = 4
    #: extra fields every request carries (e.g. llama-server's penalty window)
    extra: Callable[[SamplingParams], dict[str, Any]] | None = None
    notes: tuple[str, ...] = ()


def _llama_server_extra(params: SamplingParams) -> dict[str, Any]:
    # the engine's repetition penalty looks at the whole context; llama-server's at the last 64
    # tokens unless asked (-1 = the whole context)
    return {"repeat_last_n": -1}


KINDS: dict[str, ServerKind] = {
    "vllm": ServerKind(
        "vllm",
        "vLLM",
        params={
            **STANDARD,
            "top_k": "top_k",
            "min_p": "min_p",
            "repetition_penalty": "repetition_penalty",
        },
        max_logprobs=20,
        tokenize="/tokenize",
    ),
    "llama-server": ServerKind(
        "llama-server",
        "llama.cpp llama-server",
        params={
            **STANDARD,
            "top_k": "top_k",
            "min_p": "min_p",
            "repetition_penalty": "repeat_penalty",
        },
        tokenize="/tokenize",
        extra=_llama_server_extra,
        notes=("its seeds are 32-bit: seeds that differ by a multiple of 2^32 sample alike",),
    ),
    "llama-cpp-python": ServerKind(
        "llama-cpp-python",
        "llama-cpp-python",
        params={
            **STANDARD,
            "top_k": "top_k",
            "min_p": "min_p",
            "repetition_penalty": "repeat_penalty",
        },
        # it runs one request at a time, and by default a waiting request interrupts the one
        # streaming (its `interrupt_requests` setting): compare columns go one after another
        parallel=1,
        notes=(
            "its repeat penalty looks at the last 64 tokens (its last_n_tokens_size)",
            "its seeds are 32-bit: seeds that differ by a multiple of 2^32 sample alike",
        ),
    ),
    "ollama": ServerKind(
        "ollama",
        "Ollama",
        notes=("top_k, min_p and the repeat penalty are the model's own (its Modelfile)",),
    ),
    "openai": ServerKind("openai", "OpenAI", max_logprobs=5, parallel=4),
    "generic": ServerKind("generic", "an OpenAI-compatible server"),
}


def detect_kind(base_url: str, models: list[dict[str, Any]], get: Callable[[str], Any]) -> str:
    """The kind of server behind `base_url`, from what it already told (/v1/models) and, where
    that is not enough, a cheap look at one endpoint only that kind has. `get(path)` returns the
    JSON at a path or raises; failures just mean "not this kind"."""
    if "api.openai.com" in base_url:
        return "openai"
    owners = {str(m.get("owned_by", "")) for m in models}
    if "vllm" in owners:
        return "vllm"
    if "llamacpp" in owners:
        return "llama-server"
    if owners & {"openai", "system", "openai-internal"}:
        return "openai"
    for path, kind, check in (
        ("/openapi.json", "llama-cpp-python", _is_llama_cpp_python),
        ("/api/version", "ollama", lambda j: isinstance(j, dict) and "version" in j),
        (
            "/props",
            "llama-server",
            lambda j: isinstance(j, dict) and "default_generation_settings" in j,
        ),
        ("/version", "vllm", lambda j: isinstance(j, dict) and "version" in j),
    ):
        try:
            if check(get(path)):
                return kind
        except Exception:  # noqa: BLE001 - any failure: not this kind
            continue
    return "generic"


def _is_llama_cpp_python(spec: Any) -> bool:
    title = spec.get("info", {}).get("title", "") if isinstance(spec, dict) else ""
    return "llama.cpp Python" in title


def sampling_fields(kind: ServerKind, params: SamplingParams) -> dict[str, Any]:
    """The request fields for `params` on this kind of server (every setting it reads)."""
    body: dict[str, Any] = {}
    for name, wire in kind.params.items():
        value = getattr(params, name)
        if name == "seed" and value is None:
            continue  # no seed: the server draws one
        body[wire] = value
    if kind.extra is not None:
        body.update(kind.extra(params))
    return body


def ignored_settings(
    kind: ServerKind, params: SamplingParams, honoured: frozenset[str]
) -> list[str]:
    """Settings of `params` that differ from "off" but that this server will not apply."""
    defaults = SamplingParams()
    out = []
    for name in ("top_k", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty",
                 "top_p", "temperature", "seed"):  # fmt: skip
        if name not in honoured and getattr(params, name) != getattr(defaults, name):
            out.append(name)
    return out
