"""`resnet-deploy inspect`: what is inside an ONNX model or a TensorRT engine."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "inspect",
        help="describe an ONNX model or TensorRT engine",
        description="Describe an ONNX model (op counts, inputs/outputs, opset, resnet-deploy metadata, precision, "
        "weight bytes, Q/DQ and plugin nodes) or a TensorRT engine built by resnet-deploy (from its sidecar, and "
        "live when a GPU is usable).",
    )
    p.add_argument("model", metavar="MODEL", help="an .onnx file or an .engine/.plan file")
    p.add_argument("--json", action="store_true", help="print the description as JSON")
    p.add_argument("--layers", type=int, default=0, metavar="N", help="engines: also list the first N layers")
    p.set_defaults(func=run)


def _shape(dims: list[Any]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"


def format_onnx_summary(d: dict[str, Any]) -> str:
    """Human-readable form of :func:`resnet_deploy.api.inspect_onnx`'s result."""
    opsets = ", ".join(f"{k} {v}" for k, v in d["opset"].items())
    lines = [
        f"model       {d['path']} ({d['size_bytes'] / 1e6:.1f} MB, ONNX IR {d['ir_version']}, opset {opsets})",
        f"producer    {d['producer'] or '?'}",
        f"checker     {d['checker']}",
        f"precision   {d['precision']}",
    ]
    for v in d["inputs"]:
        lines.append(f"input       {v['name']} {v['dtype']} {_shape(v['shape'])}")
    for v in d["outputs"]:
        lines.append(f"output      {v['name']} {v['dtype']} {_shape(v['shape'])}")
    lines.append(f"nodes       {d['nodes']}: " + ", ".join(f"{k} {v}" for k, v in d["op_counts"].items()))
    lines.append(
        f"weights     {d['initializers']} initializers, {d['parameters']:,} values, "
        f"{d['initializer_bytes'] / 1e6:.2f} MB"
    )
    lines.append(f"batchnorm   {d['batchnorm_nodes']}")
    placement = f" ({d['qdq_placement']} placement)" if d.get("qdq_placement") else ""
    lines.append(f"q/dq nodes  {d['qdq_nodes']}{placement}")
    plugins = d["plugin_nodes"]
    lines.append("plugins     " + (", ".join(f"{k} {v}" for k, v in plugins.items()) if plugins else "none"))
    info = d["model_info"]
    if info is not None:
        desc = f"{info['arch']}, {info['num_classes']} classes, input {info['in_channels']}x{info['input_size']}x"
        desc += f"{info['input_size']}"
        if info.get("mean") is not None:
            desc += f", normalisation in graph (mean {info['mean']}, std {info['std']})"
        if info.get("dataset"):
            desc += f", trained on {info['dataset']}"
        if info.get("top1") is not None:
            desc += f" (top-1 {info['top1']:.2f} %)"
        if info.get("name"):
            desc += f", checkpoint {info['name']}"
        lines.append(f"model info  {desc}")
    elif d["model_info_error"]:
        lines.append(f"model info  unreadable: {d['model_info_error']}")
    else:
        lines.append("model info  none (not exported by resnet-deploy)")
    for k, v in d["metadata"].items():
        lines.append(f"metadata    {k} = {v if len(v) <= 100 else v[:97] + '...'}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..api import ENGINE_SUFFIXES, _engine_inspector, inspect_model

    result = inspect_model(args.model)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    elif result.get("format") == "onnx":
        print(format_onnx_summary(result))
    else:
        from pathlib import Path

        assert Path(args.model).suffix.lower() in ENGINE_SUFFIXES
        mod = _engine_inspector()
        fmt = getattr(mod, "format_engine_summary", None)
        print(fmt(result, max_layers=args.layers) if fmt else json.dumps(result, indent=2, default=str))
    return 0
