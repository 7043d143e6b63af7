"""`resnet-deploy serve`: a real Triton Inference Server on the models, until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .triton_repo import add_repository_options


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "serve",
        help="serve models with Triton Inference Server (HTTP/gRPC) until Ctrl-C",
        description="Write the triton-repo repository of MODEL... to a temporary folder and run Triton 2.51's server "
        "on it (the nvidia-pytriton wheel's binary, with python-based ONNX Runtime and TensorRT backends; install "
        "with pip install 'resnet-deploy[serve]'). It listens on 127.0.0.1 unless --address says otherwise, and "
        "stops, leaving nothing behind, on Ctrl-C or SIGTERM.",
    )
    add_repository_options(p)
    p.add_argument(
        "--address", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 = every one)"
    )
    p.add_argument(
        "--http-port", type=int, default=8000, metavar="P", help="HTTP/REST port (default 8000; 0 = a free one)"
    )
    p.add_argument("--grpc-port", type=int, default=8001, metavar="P", help="gRPC port (default 8001; 0 = a free one)")
    p.add_argument("--metrics-port", type=int, default=8002, metavar="P", help="Prometheus metrics port (default 8002)")
    p.add_argument(
        "--server-env",
        default=None,
        metavar="DIR",
        help="the Python environment with resnet-deploy[serve] (numpy<2) the server runs from (default: "
        "$RESNET_DEPLOY_SERVER_ENV, this one, or .venv-serve beside it)",
    )
    p.add_argument(
        "--start-timeout",
        type=float,
        default=120.0,
        metavar="S",
        help="longest wait for ready, in seconds (default 120)",
    )
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds (default: never)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..api import serve

    if args.address not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: listening on {args.address}: other machines that reach it can query the models", file=sys.stderr)

    def ready(server: Any) -> None:
        e = server.endpoints
        names = ", ".join(m.name for m in server.repo.models)
        print(
            f"Triton is serving {names} (tritonserver pid {server.pid}): HTTP {e.http}, gRPC {e.grpc}, "
            f"metrics {e.metrics}; Ctrl-C stops it",
            flush=True,
        )

    report = serve(
        args.models,
        address=args.address,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        server_env=args.server_env,
        max_batch=args.max_batch,
        instances=args.instances,
        queue_delay_us=args.queue_delay_us,
        image_input=args.image_input,
        start_timeout=args.start_timeout,
        on_ready=ready,
        duration=args.duration,
    )
    print(f"stopped ({report.reason}); tritonserver pid {report.pid} exited with code {report.exit_code}", flush=True)
    return 0
