"""ONNX files as untrusted input and as output: validated loading, atomic saving, our metadata, graph precision.

Torch-free: every backend and pass reads models through here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from ._io import atomic_write_bytes
from .errors import UserError
from .info import ModelInfo, from_onnx_props, to_onnx_props
from .onnx_scan import read_model_file, scan

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def check_no_external_data(model: onnx.ModelProto, source: str = "the ONNX model") -> None:
    """Refuse weights kept in external files anywhere in the model: resnet-deploy never reads files an ONNX model
    names (see :func:`resnet_deploy.onnx_scan.scan`)."""
    scan(model.SerializeToString(), source)


def load_onnx(path: str | Path, check: bool = True) -> onnx.ModelProto:
    """Read an untrusted ONNX file: it must parse, pass the checker and keep all weights inside the file."""
    path = Path(path)
    data = read_model_file(path)
    scan(data, str(path))  # refuses external data anywhere (subgraphs, Constant nodes, sparse tensors) first
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise UserError(f"{path} is not an ONNX model ({type(exc).__name__})") from None
    if not model.graph.node or model.ir_version == 0:
        raise UserError(f"{path} is not an ONNX model (no graph)")
    if check:
        check_model(model, str(path))
    return model


def checker_message(exc: Exception) -> str:
    """The ONNX checker's message on one line: it breaks lines inside a sentence ("...however input 'b' of node:
    \nname: n1 OpType: Relu\n is not output of any previous nodes."), so its first line alone is cut off."""
    return " ".join(str(exc).split()) or type(exc).__name__


def check_model(model: onnx.ModelProto, source: str = "the ONNX model") -> None:
    """``onnx.checker.check_model``, its message as a one-line :class:`UserError`."""
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise UserError(f"{source} fails the ONNX checker: {checker_message(exc)}") from None


FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE)


def check_finite_weights(model: onnx.ModelProto, source: str = "the ONNX model") -> None:
    """Refuse float initializers holding NaN or infinity: such a graph runs and outputs nonsense (NaN logits, or a
    chance-level accuracy reported as a measurement)."""
    from onnx import numpy_helper

    for t in model.graph.initializer:
        if t.data_type in FLOAT_TYPES and not np.isfinite(numpy_helper.to_array(t)).all():
            raise UserError(f"{source}: weight '{t.name}' holds NaN or infinite values")


def save_onnx(model: onnx.ModelProto, path: str | Path) -> Path:
    """Write an ONNX file atomically."""
    return atomic_write_bytes(path, model.SerializeToString())


def metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def set_metadata(model: onnx.ModelProto, values: dict[str, str]) -> onnx.ModelProto:
    """Add or replace ``values`` in ``model.metadata_props`` (in place)."""
    meta = metadata(model)
    meta.update(values)
    onnx.helper.set_model_props(model, meta)
    return model


def set_info(model: onnx.ModelProto, info: ModelInfo) -> onnx.ModelProto:
    """Store ``info`` in ``metadata_props``, replacing earlier values (in place)."""
    onnx.helper.set_model_props(model, to_onnx_props(info, metadata(model)))
    return model


def info_from_onnx(model: onnx.ModelProto) -> ModelInfo | None:
    """The :class:`ModelInfo` written by :func:`set_info`, or None for a foreign ONNX file."""
    return from_onnx_props(metadata(model))


def graph_precision(model: onnx.ModelProto) -> str:
    """'int8' for a Q/DQ graph, 'fp16' when float16 weights or casts are present, else 'fp32'."""
    ops = {n.op_type for n in model.graph.node}
    if ops & set(QDQ_OPS):
        return "int8"
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        return "fp16"
    for n in model.graph.node:
        if n.op_type == "Cast" and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT16 for a in n.attribute):
            return "fp16"
    return "fp32"


STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    """Node count per op type (domain-qualified outside the standard domains), most frequent first."""
    from collections import Counter

    counts = Counter(
        n.op_type if n.domain in STANDARD_DOMAINS else f"{n.domain}::{n.op_type}" for n in model.graph.node
    )
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
