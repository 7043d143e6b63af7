"""``resnet-deploy inspect``: what is inside an ONNX model, an OpenVINO IR or a TensorRT engine, as data and as
text."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import onnx

from .backends.loader import ENGINE_SUFFIXES, IR_SUFFIX
from .errors import UserError
from .info import METADATA_PREFIX, from_onnx_props, has_dynamic_hw, recorded_runtime
from .onnx_io import STANDARD_DOMAINS, checker_message, graph_precision, load_onnx, metadata, op_counts


def _value_info(v: onnx.ValueInfoProto) -> dict[str, Any]:
    t = v.type.tensor_type
    dims: list[int | str | None] = []
    for d in t.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or None))
    dtype = onnx.TensorProto.DataType.Name(t.elem_type).lower() if t.elem_type else "unknown"
    return {"name": v.name, "shape": dims, "dtype": dtype}


_SUB_BYTE_BITS = {
    getattr(onnx.TensorProto, name): bits
    for name, bits in (("INT4", 4), ("UINT4", 4), ("FLOAT4E2M1", 4), ("INT2", 2), ("UINT2", 2))
    if hasattr(onnx.TensorProto, name)
}


def tensor_size(t: onnx.TensorProto, source: str) -> tuple[int, int]:
    """(values, bytes) an initializer declares, checked against the data it holds, without decoding it: a
    ``raw_data`` whose length disagrees with the dims (or dims of many GB over a few bytes) is a one-line
    :class:`UserError`, not a numpy reshape error."""
    dims = [int(d) for d in t.dims]
    if any(d < 0 for d in dims):
        raise UserError(f"{source}: initializer '{t.name}' has negative dims {dims}")
    values = math.prod(dims)
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
        field = onnx.helper.tensor_dtype_to_field(t.data_type)
    except (KeyError, ValueError, TypeError):
        raise UserError(f"{source}: initializer '{t.name}' has unknown data type {t.data_type}") from None
    bits = _SUB_BYTE_BITS.get(t.data_type)
    nbytes = (values * bits + 7) // 8 if bits else values * itemsize
    if t.data_type == onnx.TensorProto.STRING:
        held, unit = len(t.string_data), "strings"
        nbytes = sum(len(v) for v in t.string_data)
    elif t.HasField("raw_data"):
        held, unit = len(t.raw_data), "bytes"
        if held != nbytes:
            raise UserError(
                f"{source}: initializer '{t.name}' declares dims {dims} ({nbytes:,} bytes of {_dtype_name(t)}) but "
                f"holds {held:,} bytes of data"
            )
        return values, nbytes
    else:
        per_value = 2 if t.data_type in (onnx.TensorProto.COMPLEX64, onnx.TensorProto.COMPLEX128) else 1
        held, unit = len(getattr(t, field)) // per_value, "values"
        if bits:  # sub-byte types pack several values into each int32_data entry: not counted here
            held = values
    if held != values:
        raise UserError(
            f"{source}: initializer '{t.name}' declares dims {dims} ({values:,} values of {_dtype_name(t)}) but "
            f"holds {held:,} {unit}"
        )
    return values, nbytes


def _dtype_name(t: onnx.TensorProto) -> str:
    try:
        return onnx.TensorProto.DataType.Name(t.data_type).lower()
    except ValueError:
        return f"type {t.data_type}"


def _model_info(props: dict[str, str], source: str) -> tuple[dict[str, Any] | None, str | None]:
    """(our ModelInfo as a dict, None); (None, None) without our metadata; (None, why) when it is unreadable."""
    try:
        info = from_onnx_props(props, source)
    except UserError as exc:
        return None, str(exc)
    return (None if info is None else asdict(info)), None


def inspect_onnx(path: str | Path) -> dict[str, Any]:
    """Describe an ONNX file: ops, I/O, opset, resnet-deploy metadata, precision, weights, Q/DQ and plugin nodes."""
    path = Path(path)
    try:
        model = load_onnx(path, check=False)  # inspect reports checker failures instead of refusing the file
    except UserError as exc:
        if "not an ONNX model" in str(exc):
            raise UserError(f"{path} is not an ONNX model or TensorRT engine") from None
        raise
    try:
        onnx.checker.check_model(model)
        checker = "ok"
    except onnx.checker.ValidationError as exc:
        checker = "failed: " + checker_message(exc)
    graph = model.graph
    init_names = {t.name for t in graph.initializer}
    init_bytes = 0
    n_params = 0
    for t in graph.initializer:
        values, nbytes = tensor_size(t, str(path))
        init_bytes += nbytes
        n_params += values
    ops = op_counts(model)
    plugins = Counter(f"{n.domain}::{n.op_type}" for n in graph.node if n.domain not in STANDARD_DOMAINS)
    props = metadata(model)
    info_dict, info_error = _model_info(props, "ONNX metadata")
    other_meta = {k: v for k, v in props.items() if not k.startswith(METADATA_PREFIX)}
    return {
        "schema": SCHEMA,
        "format": "onnx",
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "precision": graph_precision(model),
        "inputs": [_value_info(v) for v in graph.input if v.name not in init_names],
        "outputs": [_value_info(v) for v in graph.output],
        "model_info": info_dict,
        "ir_version": model.ir_version,
        "opset": {(o.domain or "ai.onnx"): o.version for o in model.opset_import},
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "checker": checker,
        "nodes": len(graph.node),
        "op_counts": ops,
        "initializers": len(graph.initializer),
        "initializer_bytes": init_bytes,
        "parameters": n_params,
        "qdq_nodes": ops.get("QuantizeLinear", 0) + ops.get("DequantizeLinear", 0),
        "qdq_placement": props.get(METADATA_PREFIX + "qdq_placement"),
        # what build --backend auto measured faster and load runs it on (an unknown value: None, as load ignores it)
        "runtime": recorded_runtime(props)[0],
        "batchnorm_nodes": ops.get("BatchNormalization", 0),
        "plugin_nodes": dict(plugins),
        "model_info_error": info_error,
        "metadata": other_meta,
    }


#: The keys ``inspect --json`` gives for ONNX models and engines alike, with the same meaning and types (issue 16);
#: each format adds its own after them (ONNX: ``op_counts``, ``qdq_nodes``...; engines: ``sidecar``, ``layers``...).
#: ``inputs``/``outputs``: ``{"name", "shape", "dtype"}`` with ONNX's dtype names ("float", "float16", "int8") and
#: ``shape`` entries that are ints, a dimension name ("batch") or None for a dynamic axis without one.
SCHEMA = "resnet-deploy-inspect/1"
COMMON_KEYS = ("schema", "format", "path", "size_bytes", "precision", "inputs", "outputs", "model_info")

#: TensorRT's DataType names (as the sidecar records them) -> ONNX's, so both formats spell a dtype the same way.
_TRT_DTYPES = {
    "FP32": "float", "FLOAT": "float", "FP16": "float16", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8",
    "UINT8": "uint8", "INT32": "int32", "INT64": "int64", "BOOL": "bool", "FP8": "float8e4m3fn", "INT4": "int4",
}  # fmt: skip


def _engine_io(v: Any) -> dict[str, Any]:
    """A sidecar's input/output entry in the ONNX form: -1 (the profile's batch axis at 0) becomes "batch"."""
    if not isinstance(v, dict):
        return {"name": None, "shape": [], "dtype": "unknown"}
    dims = [
        d if isinstance(d, int) and d >= 0 else ("batch" if i == 0 else None)
        for i, d in enumerate(v.get("shape") or [])
    ]
    dtype = str(v.get("dtype") or "unknown")
    return {"name": v.get("name"), "shape": dims, "dtype": _TRT_DTYPES.get(dtype.upper(), dtype.lower())}


def _engine_common(d: dict[str, Any]) -> dict[str, Any]:
    """:data:`COMMON_KEYS` for an engine's description, from what its sidecar recorded (missing parts: empty)."""
    from .info import from_sidecar

    try:
        info = from_sidecar(d) if d.get("model") and d.get("preprocessing") else None
    except (KeyError, TypeError, UserError):
        info = None
    path = Path(d["path"])
    return {
        "schema": SCHEMA,
        "format": "engine",
        "path": str(path),
        "size_bytes": d.get("size", path.stat().st_size),
        "precision": d.get("precision"),
        "inputs": [_engine_io(d["input"])] if d.get("input") else [],
        "outputs": [_engine_io(v) for v in d.get("outputs") or []],
        "model_info": None if info is None else asdict(info),
    }


#: OpenVINO element type names -> ONNX's, so IR, ONNX and engine descriptions spell a dtype the same way.
_OV_DTYPES = {
    "f32": "float", "f16": "float16", "bf16": "bfloat16", "f64": "double", "i8": "int8", "u8": "uint8",
    "i16": "int16", "u16": "uint16", "i32": "int32", "u32": "uint32", "i64": "int64", "u64": "uint64",
    "boolean": "bool", "i4": "int4", "u4": "uint4", "f8e4m3": "float8e4m3fn", "f8e5m2": "float8e5m2",
}  # fmt: skip
#: Constant types that are quantized weights (OpenVINO keeps them compressed and decompresses with a Convert).
_QUANTIZED_TYPES = ("i8", "u8", "i4", "u4")
_GRAPH_ENDS = ("Parameter", "Result")  # the IR's inputs and outputs, which ONNX does not count as nodes


def _ov_io(port: Any) -> dict[str, Any]:
    """An IR input/output in the ONNX form: a static dim as an int, a dynamic one (bounded or not) as None."""
    shape = port.get_partial_shape()
    dims = [d.get_length() if d.is_static else None for d in shape] if shape.rank.is_static else []
    name = port.get_any_name() if port.get_names() else port.get_node().get_friendly_name()
    dtype = port.get_element_type().get_type_name()
    return {"name": name, "shape": dims, "dtype": _OV_DTYPES.get(dtype, dtype)}


def ir_precision(ops: list[Any]) -> str:
    """'int8' for an IR holding FakeQuantize or quantized (int8/uint8/int4) weights decompressed by a Convert,
    'fp16' with float16 constants, else 'fp32' -- what the IR holds, whatever its metadata says."""
    if any(op.get_type_name() == "FakeQuantize" for op in ops):
        return "int8"
    consts = [op for op in ops if op.get_type_name() == "Constant"]
    for op in consts:
        if op.get_element_type().get_type_name() in _QUANTIZED_TYPES and any(
            t.get_node().get_type_name() == "Convert" for t in op.output(0).get_target_inputs()
        ):
            return "int8"
    return "fp16" if any(op.get_element_type().get_type_name() == "f16" for op in consts) else "fp32"


def inspect_ir(path: str | Path) -> dict[str, Any]:
    """Describe an OpenVINO IR (``.xml`` + ``.bin``, as ``build -o M.xml`` writes): I/O, precision from its ops, our
    metadata from its ``rt_info``, op counts, weights. Read with OpenVINO's ``Core.read_model`` through
    :func:`~resnet_deploy.backends.openvino.read_ir` (files checked first; nothing compiled)."""
    from .backends.openvino import PRECISION_KEY, ir_metadata, read_ir, require_openvino

    ov = require_openvino()
    ir = read_ir(path)
    model = ir.model
    ops = list(model.get_ordered_ops())
    counts = Counter(op.get_type_name() for op in ops if op.get_type_name() not in (*_GRAPH_ENDS, "Constant"))
    consts = [op for op in ops if op.get_type_name() == "Constant"]
    props = ir_metadata(model)
    info_dict, info_error = _model_info(props, f"{ir.xml} (IR metadata)")
    quantized = sum(op.get_element_type().get_type_name() in _QUANTIZED_TYPES for op in consts)
    return {
        "schema": SCHEMA,
        "format": "openvino-ir",
        "path": str(ir.xml),
        "size_bytes": ir.xml_bytes + ir.weights_bytes,  # the model on disk: the .xml and its .bin
        "precision": ir_precision(ops),
        "inputs": [_ov_io(p) for p in model.inputs],
        "outputs": [_ov_io(p) for p in model.outputs],
        "model_info": info_dict,
        "xml_bytes": ir.xml_bytes,
        "weights_path": str(ir.weights),
        "weights_bytes": ir.weights_bytes,
        "ir_version": ir.version,
        "openvino": ov.get_version(),
        "name": model.get_friendly_name(),
        "nodes": sum(counts.values()),
        "op_counts": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        "constants": len(consts),
        "fake_quantize_nodes": counts.get("FakeQuantize", 0),
        "quantized_constants": quantized,
        "recorded_precision": props.get(PRECISION_KEY),  # what build wrote: the precision of the source graph
        "qdq_placement": props.get(METADATA_PREFIX + "qdq_placement"),
        "model_info_error": info_error,
        "metadata": {k: v for k, v in props.items() if not k.startswith(METADATA_PREFIX) and k != PRECISION_KEY},
    }


def inspect_model(path: str | Path) -> dict[str, Any]:
    """:func:`inspect_onnx` for ONNX files, :func:`inspect_ir` for OpenVINO IR (``.xml``), the TensorRT engine
    inspection for .engine/.plan files. All start with the same :data:`COMMON_KEYS`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found" if not path.exists() else f"{path} is not a file")
    if path.suffix.lower() == IR_SUFFIX:
        return inspect_ir(path)
    if path.suffix.lower() in ENGINE_SUFFIXES:
        from .backends.tensorrt.engine_inspector import inspect_engine

        engine = {"path": str(path), **inspect_engine(path)}
        own = {k: v for k, v in engine.items() if k not in COMMON_KEYS}
        # the sidecar's own form of the outputs (TensorRT dtypes, -1 for the batch), as ``input`` is kept
        return {**_engine_common(engine), **own, "engine_outputs": engine.get("outputs")}
    return inspect_onnx(path)


def _shape(dims: list[Any]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"


def format_onnx_summary(d: dict[str, Any]) -> str:
    """Human-readable form of :func:`inspect_onnx`'s result."""
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
    if d.get("runtime"):
        lines.append(f"runtime     {d['runtime']} (measured faster by build --backend auto; load runs it there)")
    plugins = d["plugin_nodes"]
    lines.append("plugins     " + (", ".join(f"{k} {v}" for k, v in plugins.items()) if plugins else "none"))
    lines.append(_model_info_line(d))
    for k, v in d["metadata"].items():
        lines.append(f"metadata    {k} = {v if len(v) <= 100 else v[:97] + '...'}")
    return "\n".join(lines)


def _model_info_line(d: dict[str, Any]) -> str:
    info = d["model_info"]
    if info is None:
        if d.get("model_info_error"):
            return f"model info  unreadable: {d['model_info_error']}"
        return "model info  none (not exported by resnet-deploy)"
    desc = f"{info['arch']}, {info['num_classes']} classes, input {info['in_channels']}x{info['input_size']}x"
    desc += f"{info['input_size']}"
    shape = d["inputs"][0]["shape"] if len(d["inputs"]) == 1 else []
    if has_dynamic_hw(shape):
        desc += " (the opt size images are resized to; the graph's H and W are dynamic)"
    if info.get("mean") is not None:
        desc += f", normalisation in graph (mean {info['mean']}, std {info['std']})"
    if info.get("dataset"):
        desc += f", trained on {info['dataset']}"
    if info.get("top1") is not None:
        desc += f" (top-1 {info['top1']:.2f} %)"
    if info.get("name"):
        desc += f", checkpoint {info['name']}"
    return f"model info  {desc}"


def format_ir_summary(d: dict[str, Any]) -> str:
    """Human-readable form of :func:`inspect_ir`'s result."""
    recorded = d.get("recorded_precision")
    placement = f", {d['qdq_placement']} Q/DQ placement" if d.get("qdq_placement") else ""
    lines = [
        f"model       {d['path']} (OpenVINO IR v{d['ir_version']}, {d['xml_bytes'] / 1e6:.2f} MB)",
        f"weights     {d['weights_path']} ({d['weights_bytes'] / 1e6:.2f} MB; {d['constants']} constants, "
        f"{d['quantized_constants']} of them quantized)",
        f"read by     OpenVINO {d['openvino']}",
        f"precision   {d['precision']}" + (f" (source graph {recorded}{placement})" if recorded else ""),
    ]
    for v in d["inputs"]:
        lines.append(f"input       {v['name']} {v['dtype']} {_shape(v['shape'])}")
    for v in d["outputs"]:
        lines.append(f"output      {v['name']} {v['dtype']} {_shape(v['shape'])}")
    lines.append(f"nodes       {d['nodes']}: " + ", ".join(f"{k} {v}" for k, v in d["op_counts"].items()))
    lines.append(f"fakequant   {d['fake_quantize_nodes']}")
    lines.append(_model_info_line(d))
    for k, v in d["metadata"].items():
        lines.append(f"metadata    {k} = {v if len(v) <= 100 else v[:97] + '...'}")
    return "\n".join(lines)


def format_summary(result: dict[str, Any], max_layers: int = 0) -> str:
    """The text form of :func:`inspect_model`'s result, for ONNX models, OpenVINO IR and engines alike."""
    if result.get("format") == "onnx":
        return format_onnx_summary(result)
    if result.get("format") == "openvino-ir":
        return format_ir_summary(result)
    from .backends.tensorrt.engine_inspector import format_engine_summary

    return format_engine_summary({**result, "outputs": result.get("engine_outputs") or []}, max_layers=max_layers)
