"""`gpt-tui presets`: the sampling presets, built in and saved, and removing a saved one."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.table import Table

from gpt_tui.cli.console import load_for_cli, stderr, stdout
from gpt_tui.errors import InputError
from gpt_tui.settings import (
    BUILTIN_PRESETS,
    MODEL,
    delete_preset,
    find_preset,
    load_presets,
    presets_path,
)


def add_presets_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "presets",
        help="list the sampling presets (save one with --save-preset NAME in generate/sampler)",
        description="List the sampling presets: built in (greedy, default, and model: the "
        "model's own recommended settings where it ships them) and those saved with "
        "`--save-preset NAME` in generate or sampler. Use one with `--preset NAME`.",
    )
    p.add_argument(
        "--model",
        "-m",
        help="also show this model's recommended settings (the preset 'model')",
    )
    p.add_argument("--delete", metavar="NAME", help="remove the saved preset NAME")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=_run_presets)


def _run_presets(args: argparse.Namespace) -> int:
    if args.delete:
        path = delete_preset(args.delete)
        stderr.print(f"removed the preset {args.delete!r} from {path}", markup=False)
        return 0
    saved, problems = load_presets()
    for problem in problems:
        stderr.print(f"warning: {problem}", markup=False)
    rows: list[dict[str, Any]] = []
    for name, what in BUILTIN_PRESETS.items():
        settings: dict[str, Any] | None = None
        source = "built in"
        if name != MODEL:
            settings = find_preset(name, None).changes
        elif args.model:
            loaded = load_for_cli(args.model, None)
            try:
                preset = find_preset(MODEL, loaded.path)
                settings, source = preset.changes, preset.source
            except InputError as exc:
                what = f"{loaded.name}: {exc}"
        rows.append({"name": name, "source": source, "about": what, "settings": settings})
    for name, preset in sorted(saved.items()):
        rows.append({"name": name, "source": preset.source, "about": "",
                     "settings": _plain(preset.changes)})  # fmt: skip
    if args.json:
        sys.stdout.write(json.dumps({"presets": rows, "file": str(presets_path())}) + "\n")
        return 0
    table = Table(title="Sampling presets", title_justify="left", show_edge=False)
    table.add_column("name", style="bold")
    table.add_column("settings")
    table.add_column("from", style="dim")
    for row in rows:
        settings = row["settings"]
        shown = (
            ", ".join(f"{k} {v}" for k, v in settings.items()) or "(every sampler off)"
            if settings is not None
            else f"[dim]{row['about']}[/]"
        )
        table.add_row(row["name"], shown, row["source"])
    stdout.print(table)
    stdout.print(
        f"[dim]use one with --preset NAME; save the settings of a run with --save-preset NAME "
        f"(kept in {presets_path()})[/]"
    )
    return 0


def _plain(changes: dict[str, Any]) -> dict[str, Any]:
    return {k: [list(x) if isinstance(x, tuple) else x for x in v] if isinstance(v, tuple) else v
            for k, v in changes.items()}  # fmt: skip
