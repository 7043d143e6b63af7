"""`resnet-deploy compare A B`: A's outputs against B's (the reference) on the same inputs, like Polygraphy."""

from __future__ import annotations

import argparse
import json

MODEL_HELP = "a PyTorch checkpoint (path or bundled name), an .onnx file, or a TensorRT engine (needs a GPU)"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "compare",
        help="compare two models' outputs numerically (errors, cosine, top-1/top-5 agreement, per-layer SQNR)",
        description="Run A and B on the same inputs and measure A against B (the reference), as Polygraphy does: "
        "max/mean absolute and relative error (relative to B), cosine similarity, top-1/top-5 agreement, and pass "
        "or fail: an element fails when it is outside both --atol and --rtol. Exit 0 on pass, 1 on fail, 2 on bad "
        "input. --layers (two ONNX graphs of one model) adds SQNR per matched tensor.",
    )
    p.add_argument("a", metavar="A", help=f"the model checked ({MODEL_HELP})")
    p.add_argument("b", metavar="B", help=f"the reference ({MODEL_HELP})")
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--data",
        metavar="SPEC",
        help="fashion-mnist:test, an image folder, a .npz (default: fashion-mnist:test for Fashion-MNIST models)",
    )
    src.add_argument("--input", metavar="X.npy", help="a preprocessed float array (N, C, H, W) instead of --data")
    p.add_argument("--limit", type=int, metavar="N", help="compare on the first N samples only (default: all)")
    p.add_argument("--atol", type=float, default=1e-5, help="absolute tolerance (default 1e-5, Polygraphy's)")
    p.add_argument("--rtol", type=float, default=1e-5, help="relative tolerance, to |B| (default 1e-5, Polygraphy's)")
    p.add_argument("--layers", action="store_true", help="two ONNX graphs: SQNR of every tensor both have, by name")
    p.add_argument(
        "--jump-db", type=float, default=6.0, metavar="DB", help="SQNR drop, in dB, that is a jump (default 6)"
    )
    p.add_argument("--plot", metavar="OUT.png", help="with --layers: draw SQNR per layer to this PNG")
    p.add_argument("--batch-size", type=int, metavar="B", help="samples per run (default 256; 32 with --layers)")
    p.add_argument("--arch-a", help="architecture of checkpoint A, when it does not name it")
    p.add_argument("--arch-b", help="architecture of checkpoint B, when it does not name it")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("--output", "-o", metavar="OUT.json", help="also write the JSON report to this file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..api import compare

    report = compare(
        args.a,
        args.b,
        data=args.data,
        input_npy=args.input,
        atol=args.atol,
        rtol=args.rtol,
        layers=args.layers,
        plot=args.plot,
        output=args.output,
        limit=args.limit,
        batch_size=args.batch_size,
        jump_db=args.jump_db,
        arch_a=args.arch_a,
        arch_b=args.arch_b,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.summary())
        if args.output:
            print(f"report written to {args.output}")
    return 0 if report.passed else 1
