"""`resnet-deploy models`: the architectures it can build and the checkpoints bundled with it."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "models",
        help="list architectures and bundled checkpoints",
        description="List the architectures resnet-deploy builds (with parameter counts at their usual class "
        "count) and the trained checkpoints bundled with it (with their measured top-1).",
    )
    p.add_argument("--json", action="store_true", help="print JSON: {architectures: [...], checkpoints: [...]}")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..api import models_catalog

    catalog = models_catalog()
    if args.json:
        print(json.dumps(catalog, indent=2, sort_keys=True))
        return 0

    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # piped: rich would wrap at 80 columns; keep one row per line instead
        console = Console(width=200)
    archs = Table(title="Architectures", title_justify="left")
    for col, justify in [("name", "left"), ("family", "left"), ("block", "left"), ("input", "right"),
                         ("classes", "right"), ("parameters", "right"), ("description", "left")]:  # fmt: skip
        archs.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for a in catalog["architectures"]:
        archs.add_row(
            a["name"],
            a["family"],
            a["block"],
            f"{a['input_size']}",
            f"{a['num_classes']}",
            f"{a['parameters']:,}",
            a["description"],
        )
    console.print(archs)

    ckpts = Table(title="Bundled checkpoints", title_justify="left")
    for col, justify in [("name", "left"), ("arch", "left"), ("dataset", "left"), ("input", "right"),
                         ("classes", "right"), ("top-1", "right")]:  # fmt: skip
        ckpts.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for c in catalog["checkpoints"]:
        if c["error"]:
            ckpts.add_row(c["name"], "?", "?", "?", "?", f"[red]{c['error']}[/red]")
            continue
        size = f"{c['in_channels']}x{c['input_size']}x{c['input_size']}"
        top1 = "-" if c["top1"] is None else f"{c['top1']:.2f} %"  # stored in percent
        ckpts.add_row(c["name"], c["arch"], c["dataset"] or "-", size, f"{c['num_classes']}", top1)
    if catalog["checkpoints"]:
        console.print(ckpts)
    else:
        console.print("No bundled checkpoints.")
    return 0
