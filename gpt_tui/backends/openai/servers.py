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

Issue 24's samplers, where a server reads them:
- llama-server (tools/server/README.md, POST /completion's options): typical_p, top_n_sigma
  (-1 = off), xtc_probability, xtc_threshold, dry_multiplier, dry_base, dry_allowed_length,
  dry_sequence_breakers (a list of strings), dynatemp_range, dynatemp_exponent, mirostat (2 =
  v2), mirostat_tau, mirostat_eta, logit_bias as [[token, bias], ...] where a token may be its
  text and `false` bans it, and `samplers`, the order (names penalties, dry, top_n_sigma,
  top_k, typ_p, top_p, min_p, xtc, temperature; it applies logit biases before the chain, and
  mirostat in place of the truncations, whatever the order says).
- llama-cpp-python (`llama_cpp/server/types.py`): logit_bias {token: bias} with
  logit_bias_type "tokens" (keys are token texts), mirostat_mode, mirostat_tau, mirostat_eta.
- vLLM and OpenAI read logit_bias by their own tokenizer's ids, which gpt-tui does not know for
  a server (its ids are its own numbering of the pieces seen): not sent, and said.
- Banned strings rewind the text, which only the local engine can do; no server has them.
"""

from __future__ import annotations

import dataclasses
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
    #: extra fields every request carries (e.g. llama-server's penalty window), from the
    #: settings and a function that gives a token id's text (the vocabulary of pieces)
    extra: Callable[[SamplingParams, Callable[[int], str]], dict[str, Any]] | None = None
    #: the settings `extra` sends (lists, and settings whose value the server spells its way)
    reads: frozenset[str] = frozenset()
    #: why a setting that has no field here is not available, when it is not simply absent
    why: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    #: it says a step's top tokens after its sampling too (llama-server's post_sampling_probs)
    post_sampling: bool = False


#: the engine's stage names -> llama-server's sampler names (the others have none there)
LLAMA_SERVER_SAMPLERS = {
    "penalties": "penalties",
    "dry": "dry",
    "top_n_sigma": "top_n_sigma",
    "top_k": "top_k",
    "typical_p": "typ_p",
    "top_p": "top_p",
    "min_p": "min_p",
    "xtc": "xtc",
    "temperature": "temperature",
}

BANNED_BIAS = -1e30  # a bias that no logit survives (a JSON number: -inf is not one)

BY_SERVER_IDS = (
    "{kind} reads logit_bias by its own tokenizer's token ids, which gpt-tui does not know "
    "for a server"
)
NO_BANNED_STRINGS = (
    "banned strings rewind the text, which only the local engine can do; a server streams on"
)


def _llama_server_extra(params: SamplingParams, text_of: Callable[[int], str]) -> dict[str, Any]:
    body: dict[str, Any] = {
        # the engine's repetition penalty looks at the whole context; llama-server's at the last
        # 64 tokens unless asked (-1 = the whole context)
        "repeat_last_n": -1,
        "top_n_sigma": params.top_n_sigma if params.top_n_sigma > 0.0 else -1.0,
        "mirostat": 2 if params.mirostat_tau > 0.0 else 0,
        "dry_sequence_breakers": list(params.dry_sequence_breakers),
        "samplers": [
            LLAMA_SERVER_SAMPLERS[name]
            for name in params.sampler_order
            if name in LLAMA_SERVER_SAMPLERS
        ],
    }
    # tokens by their text: the server tokenises a string and biases what it becomes (one
    # token, for a piece it gave); `false` is its ban
    bias: list[list[Any]] = [[text_of(t), b] for t, b in params.logit_bias]
    bias += [[text_of(t), False] for t in params.banned_tokens]
    if bias:
        body["logit_bias"] = bias
    return body


def _llama_cpp_python_extra(
    params: SamplingParams, text_of: Callable[[int], str]
) -> dict[str, Any]:
    body: dict[str, Any] = {"mirostat_mode": 2 if params.mirostat_tau > 0.0 else 0}
    bias = {text_of(t): b for t, b in params.logit_bias}
    bias.update({text_of(t): BANNED_BIAS for t in params.banned_tokens})
    if bias:
        body["logit_bias"] = bias
        body["logit_bias_type"] = "tokens"  # keys are token texts
    return body


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
        why={
            "logit_bias": BY_SERVER_IDS.format(kind="vLLM"),
            "banned_tokens": BY_SERVER_IDS.format(kind="vLLM") + " (a ban is a bias of -100)",
            "banned_strings": NO_BANNED_STRINGS,
        },
    ),
    "llama-server": ServerKind(
        "llama-server",
        "llama.cpp llama-server",
        params={
            **STANDARD,
            "top_k": "top_k",
            "min_p": "min_p",
            "repetition_penalty": "repeat_penalty",
            "typical_p": "typical_p",
            "xtc_probability": "xtc_probability",
            "xtc_threshold": "xtc_threshold",
            "dry_multiplier": "dry_multiplier",
            "dry_base": "dry_base",
            "dry_allowed_length": "dry_allowed_length",
            "dry_penalty_last_n": "dry_penalty_last_n",
            "dynatemp_range": "dynatemp_range",
            "dynatemp_exponent": "dynatemp_exponent",
            "mirostat_tau": "mirostat_tau",
            "mirostat_eta": "mirostat_eta",
        },
        tokenize="/tokenize",
        extra=_llama_server_extra,
        reads=frozenset(
            {"top_n_sigma", "dry_sequence_breakers", "sampler_order", "logit_bias", "banned_tokens"}
        ),  # fmt: skip
        why={"banned_strings": NO_BANNED_STRINGS},
        post_sampling=True,
        notes=(
            "its seeds are 32-bit: seeds that differ by a multiple of 2^32 sample alike",
            "it applies logit biases first and mirostat in place of the truncations, whatever "
            "the sampler order says",
        ),
    ),
    "llama-cpp-python": ServerKind(
        "llama-cpp-python",
        "llama-cpp-python",
        params={
            **STANDARD,
            "top_k": "top_k",
            "min_p": "min_p",
            "repetition_penalty": "repeat_penalty",
            "mirostat_tau": "mirostat_tau",
            "mirostat_eta": "mirostat_eta",
        },
        # it runs one request at a time, and by default a waiting request interrupts the one
        # streaming (its `interrupt_requests` setting): compare columns go one after another
        parallel=1,
        extra=_llama_cpp_python_extra,
        reads=frozenset({"logit_bias", "banned_tokens"}),
        why={"banned_strings": NO_BANNED_STRINGS},
        notes=(
            "its repeat penalty looks at the last 64 tokens (its last_n_tokens_size)",
            "its seeds are 32-bit: seeds that differ by a multiple of 2^32 sample alike",
        ),
    ),
    "ollama": ServerKind(
        "ollama",
        "Ollama",
        why={"banned_strings": NO_BANNED_STRINGS},
        notes=("top_k, min_p and the repeat penalty are the model's own (its Modelfile)",),
    ),
    "openai": ServerKind(
        "openai",
        "OpenAI",
        max_logprobs=5,
        parallel=4,
        why={
            "logit_bias": BY_SERVER_IDS.format(kind="OpenAI"),
            "banned_tokens": BY_SERVER_IDS.format(kind="OpenAI") + " (a ban is a bias of -100)",
            "banned_strings": NO_BANNED_STRINGS,
        },
    ),
    "generic": ServerKind(
        "generic",
        "an OpenAI-compatible server",
        why={"banned_strings": NO_BANNED_STRINGS},
    ),
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


def read_settings(kind: ServerKind) -> set[str]:
    """The SamplingParams fields this kind of server reads (stop and max_tokens always)."""
    return set(kind.params) | set(kind.reads) | {"stop", "max_tokens"}


def sampling_fields(
    kind: ServerKind, params: SamplingParams, text_of: Callable[[int], str] | None = None
) -> dict[str, Any]:
    """The request fields for `params` on this kind of server (every setting it reads).
    `text_of` gives a token id's text (the backend's vocabulary), for biases and bans."""
    body: dict[str, Any] = {}
    for name, wire in kind.params.items():
        value = getattr(params, name)
        if name == "seed" and value is None:
            continue  # no seed: the server draws one
        body[wire] = value
    if kind.extra is not None:
        body.update(kind.extra(params, text_of or _no_text))
    return body


def _no_text(token_id: int) -> str:
    raise ValueError(f"token {token_id} has no text here (no vocabulary was given)")


#: the settings whose change from "off" a server may not apply (stop and max_tokens it always
#: does: they are applied here, on the streamed text)
_CHECKED = tuple(
    f.name for f in dataclasses.fields(SamplingParams) if f.name not in ("stop", "max_tokens")
)


def ignored_settings(
    kind: ServerKind, params: SamplingParams, honoured: frozenset[str]
) -> list[str]:
    """Settings of `params` that differ from "off" but that this server will not apply."""
    defaults = SamplingParams()
    return [
        name
        for name in _CHECKED
        if name not in honoured and getattr(params, name) != getattr(defaults, name)
    ]
