"""The flags several commands share: sampling settings, speculation, alternatives."""

from __future__ import annotations

import argparse
import codecs
from collections.abc import Callable

from gpt_tui.engine.sampling import RANGES, SamplingParams
from gpt_tui.errors import SpeculationError
from gpt_tui.settings import SPECULATIVE_DEFAULT, check_speculative


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


def _stop_type(text: str) -> str:
    """A stop sequence as typed, its backslash escapes read (\\n a newline); other characters
    are kept as they are (latin-1 with backslashreplace turns them into escapes that
    unicode_escape reads back, where decoding UTF-8 bytes as escapes would garble them)."""
    try:
        stop = codecs.decode(text.encode("latin-1", "backslashreplace"), "unicode_escape")
    except UnicodeDecodeError:
        raise argparse.ArgumentTypeError(
            f"stop {text!r} has a broken escape (write \\\\ for a backslash)"
        ) from None
    if not stop:
        raise argparse.ArgumentTypeError("stop must be non-empty text, not ''")
    return stop


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


def sampling_from_args(args: argparse.Namespace) -> SamplingParams:
    values = {name: getattr(args, name) for name in RANGES if getattr(args, name) is not None}
    return SamplingParams(seed=args.seed, stop=tuple(args.stop), **values)


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
