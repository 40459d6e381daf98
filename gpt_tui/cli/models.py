"""`gpt-tui models`, `download`, `rm`: the model cache."""

from __future__ import annotations

import argparse

from rich import box
from rich.table import Table
from rich.text import Text

from gpt_tui import locations
from gpt_tui.cli.console import (
    check_server_url,
    rich_download_progress,
    stderr,
    stdout,
)
from gpt_tui.cli.flags import add_api_key_flag
from gpt_tui.display import human_bytes, human_count
from gpt_tui.errors import InputError
from gpt_tui.models.catalog import CATALOG, DEFAULT_GPT2_URL, resolve
from gpt_tui.models.names import describe, is_remote


def add_models_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the models, their sizes and which are downloaded; or what a server offers",
    )
    p.add_argument(
        "url",
        nargs="?",
        metavar="URL",
        help="an OpenAI-compatible server (http://HOST:PORT/v1): its models, and what gpt-tui "
        "can do with it (probed)",
    )
    add_api_key_flag(p)
    p.set_defaults(run=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    if args.url:
        return _run_server_models(args.url, args.api_key)
    from gpt_tui.models import availability
    from gpt_tui.models.cache import checkpoint_path, model_path
    from gpt_tui.models.hf_models import hf_models

    table = Table(
        title=f"models in {locations.models_dir()}", title_justify="left", box=box.SIMPLE_HEAD
    )
    table.add_column("name", no_wrap=True)
    table.add_column("aliases", no_wrap=True)
    for column in ("params", "download", "memory"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("path", overflow="fold", min_width=12)
    styles = {"cached": "green", "bundled": "cyan", "partial": "yellow"}
    for spec in CATALOG:
        status = availability.status(spec.name)
        path = {
            "cached": model_path(spec.name),
            "partial": checkpoint_path(spec.name),
        }.get(status, "")
        table.add_row(
            spec.name,
            "\n".join(spec.aliases),
            human_count(spec.n_params),
            human_bytes(spec.download_bytes),
            human_bytes(spec.memory_bytes),
            Text(status, style=styles.get(status, "dim")),
            str(path),
        )
    stdout.print(table)
    # The Hugging Face cache: what other tools fetched, runnable as `--model ORG/NAME`.
    from gpt_tui.models.hf.hub_cache import hub_cache_dir

    hf = Table(
        title=f"Hugging Face models in {hub_cache_dir()} (use as --model ORG/NAME)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    hf.add_column("name", no_wrap=True)
    hf.add_column("architecture", no_wrap=True)
    for column in ("params", "size"):
        hf.add_column(column, justify="right", no_wrap=True)
    hf.add_column("status", overflow="fold", min_width=12)
    models = hf_models()
    for m in models:
        state = "converted" if m.converted else "cached" if m.supported else m.problem
        hf.add_row(
            m.repo_id,
            m.hf_architecture,
            human_count(m.n_params) if m.n_params else "?",
            human_bytes(m.size_bytes) if m.size_bytes else "?",
            Text(state, style="green" if m.supported else "yellow"),
        )
    if models:
        stdout.print(hf)
    else:
        stdout.print(f"no Hugging Face models in {hub_cache_dir()}", style="dim", markup=False)
    _print_store_models()
    return 0


def _print_store_models() -> None:
    """The GGUF files in Ollama's, LM Studio's and llama.cpp's stores, with a line per thing
    skipped."""
    from gpt_tui.models.stores.listing import store_models

    listing = store_models()
    for notice in listing.notices:
        stderr.print(f"notice: {notice}", style="dim", markup=False)
    if not listing.models:
        stdout.print(
            "no GGUF models in Ollama's, LM Studio's or llama.cpp's stores",
            style="dim",
            markup=False,
        )
        return
    table = Table(
        title="GGUF models of Ollama, LM Studio and llama.cpp (use as --model NAME)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("store", no_wrap=True)
    table.add_column("arch", no_wrap=True)
    for column in ("params", "quant", "size", "memory"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("runs", no_wrap=True)
    table.add_column("name", overflow="fold", min_width=16)  # last: a path folds in its cell
    for m in listing.models:
        s = m.summary
        table.add_row(
            m.store,
            s.architecture,
            human_count(s.n_params) if s.n_params else "?",
            s.quantization,
            human_bytes(s.size_bytes),
            human_bytes(s.memory_bytes) if s.memory_bytes else "?",
            Text("yes", style="green") if s.supported else Text("no", style="yellow"),
            m.name,
        )
    stdout.print(table)
    for m in listing.models:
        if m.summary.problem:
            stdout.print(f"{m.name} cannot run: {m.summary.problem}", style="yellow", markup=False)


def add_download_parser(sub: argparse._SubParsersAction) -> None:

    p = sub.add_parser(
        "download", help="download a GPT-2 model or a Hugging Face repo and convert it, once"
    )
    p.add_argument(
        "name",
        metavar="NAME",
        help="124M, 355M, 774M or 1558M (or gpt2, gpt2-xl, ...), or a Hugging Face ORG/NAME",
    )
    p.add_argument(
        "--force", action="store_true", help="fetch and convert again (repairs a damaged cache)"
    )
    p.add_argument(
        "--base-url",
        metavar="URL",
        help=f"where the checkpoints are (default: $GPT_TUI_GPT2_URL or {DEFAULT_GPT2_URL})",
    )
    p.add_argument(
        "--keep-checkpoint",
        action="store_true",
        help="keep OpenAI's TensorFlow files after converting them",
    )
    p.set_defaults(run=_run_download)


def _run_download(args: argparse.Namespace) -> int:
    from gpt_tui.models.availability import is_cached
    from gpt_tui.models.cache import model_path
    from gpt_tui.models.conversion import ensure_model

    ref = describe(args.name)
    if ref.kind == "hf":
        return _download_hf(args.name, args.force)
    if ref.kind in ("store", "path"):
        stdout.print(f"{args.name} is here already ({ref.path}): nothing to download", markup=False)
        return 0
    spec = resolve(args.name)
    if spec.bundled:
        stdout.print(f"{spec.name} is bundled with gpt-tui: nothing to download")
        return 0
    if not args.force and is_cached(spec.name):
        path = model_path(spec.name)
        stdout.print(f"{spec.name} is already downloaded: {path} (--force fetches it again)")
        return 0
    with rich_download_progress() as progress:
        path = ensure_model(
            spec.name,
            base_url=args.base_url,
            progress=progress,
            force=args.force,
            keep_checkpoint=args.keep_checkpoint,
        )
    stdout.print(f"{spec.name} is ready: {path}")
    return 0


def add_rm_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rm", help="delete a downloaded model from the cache")
    p.add_argument("name", metavar="NAME", help="the model to delete (see `gpt-tui models`)")
    p.set_defaults(run=_run_rm)


def _run_rm(args: argparse.Namespace) -> int:
    from gpt_tui.models.cache import remove_hf_conversion, remove_local_conversion, remove_model

    ref = describe(args.name)
    if ref.kind in ("store", "path") and ref.path is not None and ref.path.is_file():
        freed = remove_local_conversion(ref.path)
        done = f"removed gpt-tui's copy of {args.name} ({human_bytes(freed)} freed)"
        stdout.print(
            (done if freed else f"gpt-tui holds no copy of {args.name}: nothing to remove")
            + f"; {ref.path} itself is left as it is",
            markup=False,
        )
        return 0
    if ref.kind == "hf":
        freed = remove_hf_conversion(args.name)
        done = f"removed gpt-tui's copy of {args.name} ({human_bytes(freed)} freed)"
        stdout.print(
            (done if freed else f"gpt-tui holds no copy of {args.name}: nothing to remove")
            + "; the Hugging Face cache, which other tools share, is left as it is",
            markup=False,
        )
        return 0
    spec = resolve(args.name)
    if spec.bundled:
        raise InputError(f"{spec.name} is bundled with gpt-tui and cannot be removed")
    freed = remove_model(spec.name)
    if freed:
        stdout.print(f"removed {spec.name} ({human_bytes(freed)} freed)")
    else:
        stdout.print(f"{spec.name} is not downloaded: nothing to remove")
    return 0


def _download_hf(repo_id: str, force: bool) -> int:
    """Fetch a Hugging Face repo (safetensors only) into its cache and convert it once."""
    from gpt_tui.models.cache import hf_model_path, remove_hf_conversion
    from gpt_tui.models.loading import load_model

    if force:
        remove_hf_conversion(repo_id)
    elif hf_model_path(repo_id).exists():  # a converted copy only ever appears whole
        path = hf_model_path(repo_id)
        stdout.print(f"{repo_id} is already converted: {path} (--force converts it again)")
        return 0
    with rich_download_progress() as progress:
        load_model(repo_id, progress=progress)
    stdout.print(f"{repo_id} is ready: {hf_model_path(repo_id)}", markup=False)
    return 0


def _run_server_models(url: str, api_key: str | None) -> int:
    """What a server lists, and what gpt-tui can do with its model (the probe's findings)."""
    from gpt_tui.backends import openai as remote

    if not is_remote(url):
        raise InputError(f"{url} is not a server's URL: give http://HOST:PORT/v1")
    check_server_url(url)
    key = remote.api_key(api_key)
    with stderr.status(f"asking {url} for its models"):
        models = remote.models_at(url, key)
    table = Table(title=f"models at {url}", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("model", overflow="fold")
    table.add_column("owned by")
    for model in models:
        table.add_row(model.id, model.owned_by or "")
    stdout.print(table)
    base = url.split("#", 1)[0]
    stdout.print(f"pick one with --model {base}#MODEL (default: the first)", markup=False)
    with stderr.status("probing what it can do"):
        backend = remote.connect(url, key)
    try:
        for line in remote.describe(backend):
            stdout.print(line, markup=False)
    finally:
        backend.close()
    return 0
