"""``resnet-deploy`` command line: thin glue over the Python API, one module per subcommand.

Each module defines ``register(subparsers)`` (which sets ``func=run`` on its parser) and ``run(args) -> int``;
heavy imports stay inside ``run`` so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__
from ..errors import UserError

COMMANDS = ("models", "export", "build", "infer", "eval", "inspect", "bench", "triton_repo", "serve")  # modules


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resnet-deploy",
        description="Compile ResNets for deployment: PyTorch -> ONNX -> FP16/INT8 -> TensorRT or ONNX Runtime.",
    )
    parser.add_argument("--version", action="version", version=f"resnet-deploy {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: returns the process exit code (0 ok, 2 user error, 130 interrupted)."""
    parser = make_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse fills a variadic positional (infer's IMAGE...) before the options that follow it; a command that
    # names one in ``intermixed`` also takes the positionals given after its options (`infer M --top-k 3 a.png`).
    dest = getattr(args, "intermixed", None)
    if extra and dest is not None and not any(e.startswith("-") for e in extra):
        setattr(args, dest, [*getattr(args, dest), *extra])
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"resnet-deploy {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"resnet-deploy {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `resnet-deploy models | head`
        return 0
    except OSError as exc:  # disk full, permission lost mid-write: the atomic writers already cleaned up
        print(f"resnet-deploy {args.command}: error: {exc.strerror or exc} ({exc.filename or ''})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
