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
    from ._table import print_table, terminal_console

    catalog = models_catalog()
    if args.json:
        print(json.dumps(catalog, indent=2, sort_keys=True))
        return 0

    console = terminal_console()
    arch_rows = [
        [a["name"], a["family"], a["block"], f"{a['input_size']}", f"{a['num_classes']}", f"{a['parameters']:,}",
         a["description"]]
        for a in catalog["architectures"]
    ]  # fmt: skip
    arch_cols = [("name", "left"), ("family", "left"), ("block", "left"), ("input", "right"), ("classes", "right"),
                 ("parameters", "right"), ("description", "left")]  # fmt: skip
    print_table(console, "Architectures", arch_cols, arch_rows, wrap="description", droppable=["description"])  # type: ignore[arg-type]

    ckpt_rows = []
    for c in catalog["checkpoints"]:
        if c["error"]:
            ckpt_rows.append([c["name"], "?", "?", "?", "?", "?", c["error"]])
            continue
        size = f"{c['in_channels']}x{c['input_size']}x{c['input_size']}"
        top1 = "-" if c["top1"] is None else f"{c['top1']:.2f} %"  # stored in percent
        ckpt_rows.append([c["name"], c["arch"], c["dataset"] or "-", size, f"{c['num_classes']}", top1, ""])
    ckpt_cols = [("name", "left"), ("arch", "left"), ("dataset", "left"), ("input", "right"), ("classes", "right"),
                 ("top-1", "right"), ("note", "left")]  # fmt: skip
    if not any(r[-1] for r in ckpt_rows):  # no damaged checkpoint: no empty note column
        ckpt_rows, ckpt_cols = [r[:-1] for r in ckpt_rows], ckpt_cols[:-1]
    if ckpt_rows:
        print_table(console, "Bundled checkpoints", ckpt_cols, ckpt_rows, wrap="note", droppable=["dataset"])  # type: ignore[arg-type]
    else:
        console.print("No bundled checkpoints.")
    return 0
