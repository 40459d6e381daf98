"""The flags several commands share: sampling settings, presets, speculation, alternatives,
interventions.

Sampling flags are checked in two steps. argparse checks each value alone (a range, a stage's
name, a bias's number) before any model loads; the flags that name tokens (`--logit-bias`,
`--ban`) and the preset `model` need the model, so `sampling_for` finishes the settings once
it is open. Both steps fail in one line with exit code 2.
"""

from __future__ import annotations

import argparse
import codecs
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gpt_tui.engine.hooked import Interventions, Steering
from gpt_tui.engine.interventions import Ablation, parse_ablation
from gpt_tui.engine.sampling import RANGES, SamplingParams, temperature_last
from gpt_tui.engine.sampling.params import DEFAULT_ORDER, LOGIT_BIAS_LIMIT
from gpt_tui.errors import InputError, SpeculationError
from gpt_tui.settings import SPECULATIVE_DEFAULT, check_speculative, find_preset, save_preset


def _param_type(name: str) -> Callable[[str], float | int]:
    """An argparse type that validates a sampling flag against its range at the boundary."""
    spec = RANGES[name]

    def parse(text: str) -> float | int:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name} must be a number in {spec.describe()}, not {text!r}"
            ) from None
        try:
            SamplingParams(**{name: int(value) if spec.integer and value.is_integer() else value})
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return int(value) if spec.integer else value

    return parse


def _seed_type(text: str) -> int:
    try:
        return SamplingParams(seed=int(text)).seed  # type: ignore[return-value]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seed must be a whole number in [0, 2^63), not {text!r}"
        ) from None


def n_top_type(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 100:
        raise argparse.ArgumentTypeError(f"top must be a whole number in [0, 100], not {text!r}")
    return int(text)


def _escaped(what: str, text: str) -> str:
    """Text as typed, its backslash escapes read (\\n a newline); other characters are kept as
    they are (latin-1 with backslashreplace turns them into escapes that unicode_escape reads
    back, where decoding UTF-8 bytes as escapes would garble them). Never empty."""
    try:
        out = codecs.decode(text.encode("latin-1", "backslashreplace"), "unicode_escape")
    except UnicodeDecodeError:
        raise argparse.ArgumentTypeError(
            f"{what} {text!r} has a broken escape (write \\\\ for a backslash)"
        ) from None
    if not out:
        raise argparse.ArgumentTypeError(f"{what} must be non-empty text, not ''")
    return out


def _stop_type(text: str) -> str:
    """A stop sequence as typed, its backslash escapes read."""
    return _escaped("stop", text)


def _ban_string_type(text: str) -> str:
    return _escaped("ban-string", text)


def _breaker_type(text: str) -> str:
    return _escaped("dry-sequence-breaker", text)


def _token_type(text: str) -> str:
    """A token as typed: a whole number is an id, anything else a text that must be one token
    (checked once the model is open)."""
    return text.strip() if text.strip().isdigit() else _escaped("ban", text)


def _bias_type(text: str) -> tuple[str, float]:
    """TOKEN=BIAS: the token as `_token_type` reads it, the bias a number in [-100, 100]."""
    token, sep, bias = text.rpartition("=")
    if not sep or not token:
        raise argparse.ArgumentTypeError(
            f"logit-bias takes TOKEN=BIAS (a token id or text, a number in [-100, 100]), "
            f"not {text!r}"
        )
    try:
        value = float(bias)
    except ValueError:
        value = float("nan")
    if not -LOGIT_BIAS_LIMIT <= value <= LOGIT_BIAS_LIMIT:  # (NaN fails too)
        raise argparse.ArgumentTypeError(
            f"logit-bias of {token!r} must be a number in [-100, 100], not {bias!r}"
        )
    return (token.strip() if token.strip().isdigit() else _escaped("logit-bias", token)), value


def _order_type(text: str) -> tuple[str, ...]:
    try:
        return SamplingParams(sampler_order=text).sampler_order
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _preset_type(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("preset must be a name, not ''")
    return text.strip()


def add_sampling_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling")
    for name, spec in RANGES.items():
        g.add_argument(
            "--" + name.replace("_", "-"),
            type=_param_type(name),
            default=None,
            metavar="N" if spec.integer else "X",
            help=f"{spec.help} {spec.describe()} (default {spec.default:g})",
        )
    g.add_argument("--seed", type=_seed_type, help="random seed; the same seed repeats a run")
    g.add_argument(
        "--stop",
        type=_stop_type,
        action="append",
        default=[],
        metavar="TEXT",
        help="stop before this text (repeatable; \\n for a newline)",
    )
    g.add_argument(
        "--logit-bias",
        type=_bias_type,
        action="append",
        default=[],
        metavar="TOKEN=BIAS",
        help="add BIAS in [-100, 100] to a token's logit (repeatable; TOKEN an id, or a text "
        "that is exactly one token of the model; OpenAI's logit_bias)",
    )
    g.add_argument(
        "--ban",
        type=_token_type,
        action="append",
        default=[],
        metavar="TOKEN",
        help="never draw this token (repeatable; an id, or a text that is one token)",
    )
    g.add_argument(
        "--ban-string",
        type=_ban_string_type,
        action="append",
        default=[],
        metavar="TEXT",
        help="never produce this text, in any case: generation rewinds to where it began and "
        "draws again there without that token (repeatable; \\n for a newline)",
    )
    g.add_argument(
        "--dry-sequence-breaker",
        type=_breaker_type,
        action="append",
        default=[],
        metavar="TEXT",
        help="a text that ends a repeat for DRY (repeatable; replaces the default breakers "
        "\\n : \" *, as llama.cpp's flag does)",
    )
    g.add_argument(
        "--sampler-order",
        type=_order_type,
        metavar="A,B,C",
        help="the stages in the order they run; stages left out do not run (default "
        f"{','.join(DEFAULT_ORDER)})",
    )
    g.add_argument(
        "--temperature-last",
        action="store_true",
        help="move temperature to the end of the order, so the truncations see the model's own "
        "distribution (llama.cpp's and text-generation-webui's switch)",
    )
    g.add_argument(
        "--preset",
        type=_preset_type,
        metavar="NAME",
        help="start from a preset's settings (built in: greedy, default, model; the flags given "
        "change it); `gpt-tui presets` lists them",
    )
    g.add_argument(
        "--save-preset",
        type=_preset_type,
        metavar="NAME",
        help="save the settings of this run (the preset and flags, without the seed and max "
        "tokens) as NAME",
    )


def sampling_from_args(
    args: argparse.Namespace, base: SamplingParams | None = None
) -> SamplingParams:
    """The settings the flags give, on `base` (default: every sampler off), apart from the flags
    that name tokens (`sampling_for` adds those)."""
    base = base or SamplingParams()
    values: dict[str, Any] = {
        name: getattr(args, name) for name in RANGES if getattr(args, name) is not None
    }
    if args.seed is not None:
        values["seed"] = args.seed
    if args.stop:
        values["stop"] = tuple(args.stop)
    if args.ban_string:
        values["banned_strings"] = tuple(args.ban_string)
    if args.dry_sequence_breaker:
        values["dry_sequence_breakers"] = tuple(args.dry_sequence_breaker)
    if args.sampler_order is not None:
        values["sampler_order"] = args.sampler_order
    params = base.replace(**values)
    if args.temperature_last:
        params = params.replace(sampler_order=temperature_last(params.sampler_order))
    return params


def sampling_for(
    args: argparse.Namespace,
    tokenizer: Any,
    n_vocab: int,
    model_dir: Path | None = None,
    *,
    name: str = "the model",
    remote: bool = False,
) -> SamplingParams:
    """The settings of a run once the model is open: the preset, the flags, and the tokens the
    flags name; saved as a preset when `--save-preset` asks. InputError for a token that is not
    one of the model's, or a preset that is not known."""
    base = find_preset(args.preset, model_dir).sampling() if args.preset else SamplingParams()
    changes: dict[str, Any] = {}
    if args.logit_bias:
        changes["logit_bias"] = [
            (token_id(tokenizer, t, n_vocab, "--logit-bias", remote), b) for t, b in args.logit_bias
        ]
    if args.ban:
        changes["banned_tokens"] = [
            token_id(tokenizer, t, n_vocab, "--ban", remote) for t in args.ban
        ]
    try:  # (each flag was checked alone; together, or with a preset, they may still clash)
        params = sampling_from_args(args, base).replace(**changes)
        params.check_vocabulary(n_vocab)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if params.top_k > n_vocab:
        # The flag's own range is GPT-2's vocabulary; the model loaded may have fewer tokens.
        raise InputError(
            f"--top-k: top_k must be in [0, {n_vocab}] (the vocabulary of {name}), "
            f"not {params.top_k}"
        )
    if args.save_preset:
        save_preset(args.save_preset, params)
    return params


def token_id(tokenizer: Any, token: str, n_vocab: int, flag: str, remote: bool = False) -> int:
    """A token as a flag names it: an id of the model's vocabulary, or a text that is exactly
    one of its tokens. On a server, ids are gpt-tui's own numbering of the pieces seen, so only
    a text names a token there."""
    if token.isdigit():
        if remote:
            raise InputError(
                f"{flag} {token}: on a server, give the token as its text (gpt-tui does not "
                "know the server's token ids)"
            )
        if int(token) >= n_vocab:
            raise InputError(
                f"{flag} {token}: not a token of this model (its ids are 0 to {n_vocab - 1})"
            )
        return int(token)
    ids = tokenizer.encode(token, "all")
    if len(ids) == 1:
        return int(ids[0])
    pieces = " ".join(repr(tokenizer.token_text(i)) for i in ids) or "nothing"
    raise InputError(f"{flag} {token!r} is not one token: it tokenises to {len(ids)}: {pieces}")


def _speculative_type(text: str) -> str:
    try:
        return check_speculative(text)
    except SpeculationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_speculative_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--speculative",
        type=_speculative_type,
        default=None,  # the default where the model's backend can speculate (a server cannot)
        metavar="off|lookup|MODEL",
        help="speculative decoding: the same text, several tokens per pass when drafts hold; "
        "lookup drafts from the prompt and output so far, MODEL is a draft model with the same "
        f"tokenizer (default {SPECULATIVE_DEFAULT})",
    )


def add_api_key_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--api-key",
        metavar="KEY",
        help="the key of an OpenAI-compatible server given as --model URL (default: "
        "OPENAI_API_KEY); sent to that server only, never written anywhere",
    )


# --- interventions ------------------------------------------------------------------------------

INTERVENTIONS_REMOTE = (
    "interventions (--ablate, --steer-*) need the local engine: a server does not let gpt-tui "
    "change the model's activations"
)


def _ablation_type(text: str) -> Ablation:
    """An ablation's form (L.H, L.attn, L.mlp, :mean); its block and head are checked against
    the model once it is open (`interventions_for`)."""
    try:
        return parse_ablation(text, 1 << 30, 1 << 30)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _steer_text_type(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("a steering text must be non-empty, not ''")
    return text


def _block_type(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(
            f"steer-layer must be a block number (from 0), not {text!r}"
        )
    return int(text)


def _coef_type(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"steer-coef must be a finite number, not {text!r}")
    return value


def add_intervention_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("interventions (the local engine only)")
    g.add_argument(
        "--ablate",
        type=_ablation_type,
        action="append",
        default=[],
        metavar="SPEC",
        help="switch a part off (repeatable): L.H head H of block L, L.attn block L's attention, "
        "L.mlp its MLP (blocks and heads from 0); set to zero, or with a :mean suffix to its "
        "mean over the text's positions",
    )
    g.add_argument(
        "--steer-add",
        type=_steer_text_type,
        metavar="TEXT_A",
        help="steer towards TEXT_A: add (the residual entering block --steer-layer at TEXT_A's "
        "last token minus the same for --steer-sub's TEXT_B) x --steer-coef at every position",
    )
    g.add_argument("--steer-sub", type=_steer_text_type, metavar="TEXT_B",
                   help="steer away from TEXT_B (with --steer-add)")  # fmt: skip
    g.add_argument("--steer-layer", type=_block_type, metavar="L",
                   help="the block whose entering residual is steered (from 0)")  # fmt: skip
    g.add_argument("--steer-coef", type=_coef_type, default=None, metavar="C",
                   help="the steering vector's coefficient (default 1)")  # fmt: skip


def wants_interventions(args: argparse.Namespace) -> bool:
    steer = (args.steer_add, args.steer_sub, args.steer_layer, args.steer_coef)
    return bool(args.ablate) or any(x is not None for x in steer)


def interventions_for(
    args: argparse.Namespace, model: Any, tokenizer: Any, allowed_special: str = "none"
) -> Interventions:
    """The interventions the flags ask for, on the model opened: InputError for a block or head
    it lacks, or steering flags given without the others. The steering texts are read as the
    command reads its TEXT (`allowed_special`)."""
    steering = None
    if any(x is not None for x in (args.steer_add, args.steer_sub, args.steer_layer,
                                   args.steer_coef)):  # fmt: skip
        given = {"--steer-add": args.steer_add, "--steer-sub": args.steer_sub,
                 "--steer-layer": args.steer_layer}  # fmt: skip
        missing = [flag for flag, value in given.items() if value is None]
        if missing:
            raise InputError(f"steering needs {', '.join(missing)} too")
        add = tuple(tokenizer.encode(args.steer_add, allowed_special))
        sub = tuple(tokenizer.encode(args.steer_sub, allowed_special))
        if max(len(add), len(sub)) > model.n_ctx:
            raise InputError(f"a steering text is longer than the context of {model.n_ctx} tokens")
        coef = 1.0 if args.steer_coef is None else args.steer_coef
        steering = Steering(args.steer_layer, coef, add, sub, args.steer_add, args.steer_sub)
    interventions = Interventions(tuple(args.ablate), steering)
    try:
        interventions.check(model.n_layer, model.n_head)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return interventions
