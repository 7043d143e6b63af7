"""``resnet-deploy`` command line: thin glue over the Python API, one module per subcommand.

Each module defines ``register(subparsers)`` (which sets ``func=run`` on its parser) and ``run(args) -> int``;
heavy imports stay inside ``run`` so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from .. import __version__
from ..errors import UserError

# the command modules, in `--help` order
COMMANDS = ("models", "export", "build", "infer", "eval", "compare", "inspect", "bench", "triton_repo", "serve")
#: The longest error line printed: a message that quotes untrusted input (an IDX header of 255 dimensions, a path)
#: must not become a kilobyte-long line; the start says what failed, the end usually why.
MAX_ERROR_CHARS = 400


def one_line(message: str, limit: int = MAX_ERROR_CHARS) -> str:
    """``message`` on one line (newlines and runs of spaces collapsed), at most ``limit`` characters."""
    text = " ".join(message.split())
    if len(text) <= limit:
        return text
    tail = limit // 4
    return f"{text[: limit - tail - 5]} ... {text[-tail:]}"


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
        with warnings.catch_warnings():
            # numpy's RuntimeWarnings and libraries' UserWarnings are not for the user of a command: what they
            # warn about is checked and reported in one line, or does not matter to the result.
            warnings.simplefilter("ignore")
            return int(args.func(args) or 0)
    except UserError as exc:
        print(f"resnet-deploy {args.command}: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"resnet-deploy {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `resnet-deploy models | head`
        return 0
    except OSError as exc:  # disk full, permission lost mid-write: the atomic writers already cleaned up
        text = one_line(f"{exc.strerror or exc} ({exc.filename or ''})")
        print(f"resnet-deploy {args.command}: error: {text}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
