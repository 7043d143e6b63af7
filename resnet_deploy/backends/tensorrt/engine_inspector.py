"""What an engine is made of: per-layer information, summarised (fused layers, precisions, tactics).

Two sources, and the summary always says which one it shows:

- ``engine_inspector``: TensorRT's ``IEngineInspector`` on a deserialized engine (JSON format; detailed when the
  engine was built with ``ProfilingVerbosity.DETAILED``, as :mod:`.builder` does). This is the engine *after*
  TensorRT's optimizer: fused layers, chosen precisions and tactics. It needs a GPU that can deserialize it.
- ``network_definition``: the ``INetworkDefinition`` TensorRT's ONNX parser produced, captured at build time.
  This is the graph *before* optimization (no fusion, no tactics); on a machine without a GPU (TensorRT-RTX
  builds there, but cannot deserialize) it is the only true thing available, so the builder stores it in the
  sidecar.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import UserError
from . import compat, sidecar

if TYPE_CHECKING:
    import tensorrt as trt

_ONNX_LAYER = re.compile(r"\[ONNX Layer: ([^\]]*)\]")
# TensorRT separates the metadata of fused layers (and sometimes names) with ASCII record/unit separators.
_SEPARATORS = re.compile("[\x1e\x1f]")
# Precision words in the inspector's "Format/Datatype" strings, e.g. "Channel major FP16 format where ...".
_PRECISION_WORDS = {
    "FP32": "FP32",
    "Float": "FP32",
    "FP16": "FP16",
    "Half": "FP16",
    "BFloat16": "BF16",
    "BF16": "BF16",
    "Int8": "INT8",
    "INT8": "INT8",
    "FP8": "FP8",
    "Int32": "INT32",
    "INT32": "INT32",
    "Int64": "INT64",
    "UInt8": "UINT8",
    "Bool": "BOOL",
    "BOOL": "BOOL",
}
_DTYPE_NAMES = {"FLOAT": "FP32", "HALF": "FP16", "BF16": "BF16", "INT8": "INT8", "FP8": "FP8", "INT32": "INT32"}


def onnx_nodes_from_metadata(metadata: str) -> list[str]:
    """ONNX node names in a TensorRT layer's metadata (``[ONNX Layer: a]\\x1e[ONNX Layer: b]``)."""
    return _ONNX_LAYER.findall(metadata or "")


def dtype_name(dtype: Any) -> str:
    name = getattr(dtype, "name", None) or str(dtype).rsplit(".", 1)[-1]
    return _DTYPE_NAMES.get(name, name)


def layers_from_network(network: trt.INetworkDefinition) -> list[dict[str, Any]]:
    """Layer records (name, type, output precisions, ONNX nodes) of a parsed network definition."""
    out: list[dict[str, Any]] = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        precisions = sorted({dtype_name(layer.get_output(j).dtype) for j in range(layer.num_outputs)})
        metadata = str(getattr(layer, "metadata", "") or "")  # ILayer.metadata: TensorRT 10.0+
        out.append(
            {
                "name": str(layer.name),
                "type": dtype_name(layer.type),
                "precisions": precisions,
                "onnx_nodes": onnx_nodes_from_metadata(metadata),
                "tactic": None,
                "fused": None,  # unknown before the optimizer runs
            }
        )
    return out


def _region_precision(region: Any) -> str | None:
    if not isinstance(region, dict):
        return None
    fmt = str(region.get("Format/Datatype", ""))
    for word in re.findall(r"[A-Za-z0-9]+", fmt):
        if word in _PRECISION_WORDS:
            return _PRECISION_WORDS[word]
    return None


def layers_from_inspector_json(text: str) -> list[dict[str, Any]]:
    """Layer records from ``IEngineInspector.get_engine_information(LayerInformationFormat.JSON)``.

    With ``ProfilingVerbosity.DETAILED`` each layer is an object (Name, LayerType, Inputs/Outputs with
    "Format/Datatype", Metadata, TacticName); with ``LAYER_NAMES_ONLY`` it is just a name.
    """
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"TensorRT's engine inspector returned invalid JSON ({exc})") from None
    raw = doc.get("Layers") if isinstance(doc, dict) else None
    if not isinstance(raw, list):
        raise UserError("TensorRT's engine inspector returned no 'Layers' list")
    out: list[dict[str, Any]] = []
    for item in raw:
        if isinstance(item, str):
            name = item
            onnx_nodes: list[str] = []
            precisions: list[str] = []
            ltype, tactic = "unknown", None
        elif isinstance(item, dict):
            name = str(item.get("Name", ""))
            ltype = str(item.get("ParameterType") or item.get("LayerType") or "unknown")
            onnx_nodes = onnx_nodes_from_metadata(str(item.get("Metadata", "")))
            regions = list(item.get("Inputs") or []) + list(item.get("Outputs") or [])
            precisions = sorted({p for p in (_region_precision(r) for r in regions) if p})
            tactic_raw = item.get("TacticName") or item.get("TacticValue")
            tactic = str(tactic_raw) if tactic_raw not in (None, "") else None
        else:
            continue
        clean = _SEPARATORS.sub("+", name)
        out.append(
            {
                "name": clean,
                "type": ltype,
                "precisions": precisions,
                "onnx_nodes": onnx_nodes,
                "tactic": tactic,
                "fused": "+" in clean or len(onnx_nodes) > 1,
            }
        )
    return out


def layers_from_engine(engine: trt.ICudaEngine) -> list[dict[str, Any]]:
    """Layer records of a deserialized engine via its engine inspector (needs a GPU to have the engine)."""
    inspector = engine.create_engine_inspector()
    text = inspector.get_engine_information(compat.trt.LayerInformationFormat.JSON)
    return layers_from_inspector_json(str(text))


def summarize_layers(layers: list[dict[str, Any]], source: str) -> dict[str, Any]:
    """Counts by type and precision, and the fused layers (engine inspector only)."""
    fused = [
        {"name": layer["name"], "onnx_nodes": layer["onnx_nodes"], "precisions": layer["precisions"]}
        for layer in layers
        if layer.get("fused")
    ]
    precisions: Counter[str] = Counter()
    for layer in layers:
        for p in layer["precisions"] or ["unknown"]:
            precisions[p] += 1
    return {
        "source": source,
        "layer_count": len(layers),
        "by_type": dict(Counter(layer["type"] for layer in layers).most_common()),
        "by_precision": dict(precisions.most_common()),
        "fused_count": len(fused) if source == "engine_inspector" else None,
        "fused": fused,
        "tactics": sorted({layer["tactic"] for layer in layers if layer.get("tactic")}),
    }


def io_from_engine(engine: trt.ICudaEngine) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(first input with its profile 0 shapes, outputs) of a deserialized engine, with the calls the runtime
    uses (``ICudaEngine.get_tensor_*``, as in NVIDIA/TensorRT ``samples/python/common_runtime.py``). Needs a GPU."""
    trt_mod = compat.trt
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        record: dict[str, Any] = {
            "name": name,
            "dtype": str(engine.get_tensor_dtype(name)).rsplit(".", 1)[-1],
            "shape": [d if d >= 0 else None for d in compat.dims_list(engine.get_tensor_shape(name))],
        }
        if engine.get_tensor_mode(name) == trt_mod.TensorIOMode.INPUT:
            mn, opt, mx = (compat.dims_list(x) for x in engine.get_tensor_profile_shape(name, 0))
            record.update(min_shape=mn, opt_shape=opt, max_shape=mx)
            inputs.append(record)
        else:
            outputs.append(record)
    return (inputs[0] if inputs else None), outputs


def inspect_foreign_engine(path: Path, live: bool = True) -> dict[str, Any]:
    """What can be told of an engine without a sidecar (trtexec, Polygraphy): its size and sha256 always; its
    I/O and layers only where this machine can deserialize it. TensorRT-RTX cannot without a GPU: its
    ``deserializeCudaEngine`` creates a CUDA stream first and fails with cudaError 35 (tried with 1.7.1)."""
    size = path.stat().st_size
    if size == 0 or size > sidecar.MAX_ENGINE_BYTES:
        raise UserError(f"{path} is not a TensorRT engine (size {size} bytes)")
    notes = [sidecar.FOREIGN_WARNING.format(path=path, name=sidecar.sidecar_path(path).name)]
    layers: list[dict[str, Any]] = []
    source, origin = "none", "nowhere (no sidecar, and the engine was not deserialized)"
    inp: dict[str, Any] | None = None
    outs: list[dict[str, Any]] = []
    usable, reason = compat.gpu_runtime_status()
    if live and usable:
        from .runtime import deserialize_engine_bytes  # GPU-only module, imported only when a GPU is usable

        data, _ = sidecar.read_foreign_engine(path)
        try:  # needs a GPU TensorRT runs on
            _runtime, engine = deserialize_engine_bytes(data)
            inp, outs = io_from_engine(engine)
            layers, source = layers_from_engine(engine), "engine_inspector"
            origin = "TensorRT engine inspector (live)"
        except UserError as exc:
            notes.append(f"live inspection failed: {exc}")
    elif live:
        notes.append(f"live inspection unavailable: {reason}; without it only the file's size and sha256 are known")
    return {
        "path": str(path),
        "sidecar": None,
        "integrity": "unverified",
        "sidecar_stale": False,
        "engine_sha256": sidecar.sha256_file(path),
        "size": path.stat().st_size,
        "model": None,
        "precision": None,
        "tensorrt": None,
        "gpu": None,
        "input": inp,
        "outputs": outs,
        "preprocessing": None,
        "calibration": None,
        "build_options": None,
        "layers_origin": origin,
        "summary": summarize_layers(layers, source),
        "layers": layers,
        "notes": notes,
    }


def inspect_engine(path: str | Path, live: bool = True) -> dict[str, Any]:
    """Everything known about an engine file, from its sidecar and, when this machine can, TensorRT itself.

    The sha256 of the engine is always checked against the sidecar; a mismatch is reported in
    ``integrity`` (and by :func:`format_engine_summary`) rather than raised, since inspecting is read-only.
    With ``live=True`` and a usable GPU runtime, the engine is deserialized and its inspector supersedes the
    sidecar's layer list.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"engine {path} not found")
    side = sidecar.sidecar_path(path)
    if not side.is_file():
        return inspect_foreign_engine(path, live)
    meta = sidecar.read(side)
    actual = sidecar.sha256_file(path)
    integrity = "ok" if actual == meta["engine"]["sha256"] else "mismatch"
    stale = integrity == "mismatch" and sidecar.is_stale(path, side)
    layers = list(meta["layers"]["items"])
    source = str(meta["layers"]["source"])
    origin = "sidecar (captured at build time)"
    notes: list[str] = []
    if live and integrity == "ok":
        usable, reason = compat.gpu_runtime_status()
        if usable:
            from .runtime import deserialize_engine  # GPU-only module, imported only when a GPU is usable

            try:  # needs a GPU TensorRT runs on
                _runtime, engine = deserialize_engine(path)
                layers, source = layers_from_engine(engine), "engine_inspector"
                origin = "TensorRT engine inspector (live)"
            except UserError as exc:  # e.g. built by another TensorRT: the sidecar still tells the truth
                notes.append(f"live inspection failed: {exc}")
        else:
            notes.append(f"live inspection unavailable: {reason}")
    if source == "network_definition":
        notes.append(
            "layers are TensorRT's network definition before optimization (no fusion or tactics): "
            "the engine could not be deserialized where it was built"
        )
    return {
        "path": str(path),
        "sidecar": str(side),
        "integrity": integrity,
        "sidecar_stale": stale,
        "engine_sha256": actual,
        "size": path.stat().st_size,
        "model": meta["model"],
        "precision": meta["precision"],
        "tensorrt": meta["tensorrt"],
        "gpu": meta["gpu"],
        "input": meta["input"],
        "outputs": meta["outputs"],
        "preprocessing": meta["preprocessing"],
        "calibration": meta["calibration"],
        "build_options": meta["build_options"],
        "layers_origin": origin,
        "summary": summarize_layers(layers, source),
        "layers": layers,
        "notes": notes,
    }


def _shape_str(shape: list[int]) -> str:
    # a dynamic axis: N for the batch, H and W for a dynamic-size NCHW input, ? elsewhere
    names = ["N", "C", "H", "W"] if len(shape) == 4 else ["N"]
    return (
        "(" + ", ".join((names[i] if i < len(names) else "?") if d < 0 else str(d) for i, d in enumerate(shape)) + ")"
    )


def _format_foreign(info: dict[str, Any], lines: list[str], max_layers: int) -> str:
    lines.append("  WARNING   no sidecar: nothing about this engine could be verified")
    lines.append(f"sha256      {info['engine_sha256']}")
    inp = info["input"]
    if inp is not None:
        lines.append(
            f"input       {inp['name']} {inp['dtype']} {_shape_str(inp['shape'])}  profile min "
            f"{_shape_str(inp['min_shape'])} opt {_shape_str(inp['opt_shape'])} max {_shape_str(inp['max_shape'])}"
        )
    for out in info["outputs"]:
        lines.append(f"output      {out['name']} {out['dtype']} {_shape_str(out['shape'])}")
    s = info["summary"]
    if s["layer_count"]:
        lines.append(f"layers      {s['layer_count']} from {info['layers_origin']} [{s['source']}]")
        lines.append("  by type   " + ", ".join(f"{k} {v}" for k, v in s["by_type"].items()))
        lines.append("  precision " + ", ".join(f"{k} {v}" for k, v in s["by_precision"].items()))
    for note in info["notes"]:
        lines.append(f"note        {note}")
    for layer in info["layers"][:max_layers]:
        lines.append(f"  {layer['type']:<16} {'/'.join(layer['precisions']):<10} {layer['name']}")
    return "\n".join(lines)


def format_engine_summary(info: dict[str, Any], max_layers: int = 0) -> str:
    """Human-readable summary of :func:`inspect_engine`'s result; ``max_layers`` > 0 also lists layers."""
    lines: list[str] = []
    model = info["model"]
    trt_names = {"tensorrt": "TensorRT", "tensorrt_rtx": "TensorRT-RTX"}
    lines.append(f"engine      {info['path']} ({info['size'] / 1e6:.1f} MB)")
    if info.get("sidecar", "") is None:
        return _format_foreign(info, lines, max_layers)
    if info.get("sidecar_stale"):
        lines.append("  WARNING   sha256 does not match the sidecar, which is older than the engine: it is stale")
        lines.append("            (an interrupted build, or the engine was replaced); it will not be loaded")
    elif info["integrity"] != "ok":
        lines.append("  WARNING   sha256 does not match the sidecar: the engine was modified; it will not be loaded")
    lines.append(f"model       {model.get('name') or model.get('arch') or '?'} ({model.get('arch') or '?'})")
    lines.append(f"precision   {info['precision']}")
    t = info["tensorrt"]
    lines.append(f"built with  {trt_names.get(t['flavour'], t['flavour'])} {t['version']}")
    gpu = info["gpu"]
    lines.append(
        "gpu         " + (f"{gpu['name']} (compute capability {gpu['compute_capability']})" if gpu else "none")
    )
    inp = info["input"]
    lines.append(
        f"input       {inp['name']} {inp['dtype']} {_shape_str(inp['shape'])}"
        f"  profile min {_shape_str(inp['min_shape'])} opt {_shape_str(inp['opt_shape'])}"
        f" max {_shape_str(inp['max_shape'])}"
    )
    for out in info["outputs"]:
        lines.append(f"output      {out['name']} {out['dtype']} {_shape_str(out['shape'])}")
    pre = info["preprocessing"]
    if pre["normalization"] == "in_graph":
        lines.append(f"preprocess  inputs in [0, 1]; mean {pre['mean']} std {pre['std']} applied inside the engine")
    else:
        lines.append("preprocess  the caller normalises the input")
    if info["calibration"]:
        cal = info["calibration"]
        lines.append(
            f"calibration {cal['method']}" + (f" (cache {cal['cache_sha256'][:12]})" if cal.get("cache_sha256") else "")
        )
    s = info["summary"]
    lines.append(f"layers      {s['layer_count']} from {info['layers_origin']} [{s['source']}]")
    lines.append("  by type   " + ", ".join(f"{k} {v}" for k, v in s["by_type"].items()))
    lines.append("  precision " + ", ".join(f"{k} {v}" for k, v in s["by_precision"].items()))
    if s["fused_count"] is None:
        lines.append("  fused     unknown (needs the engine inspector on a GPU)")
    else:
        lines.append(f"  fused     {s['fused_count']} layers")
        for f in s["fused"][:10]:
            lines.append(f"            {f['name']}  [{', '.join(f['precisions'])}]")
        if s["fused_count"] > 10:
            lines.append(f"            ... {s['fused_count'] - 10} more")
    if s["tactics"]:
        lines.append(f"  tactics   {len(s['tactics'])} distinct")
    for note in info["notes"]:
        lines.append(f"note        {note}")
    if max_layers > 0:
        lines.append("")
        for layer in info["layers"][:max_layers]:
            nodes = ", ".join(layer["onnx_nodes"])
            lines.append(
                f"  {layer['type']:<16} {'/'.join(layer['precisions']):<10} {layer['name']}"
                + (f"  <- {nodes}" if nodes and nodes != layer["name"] else "")
            )
    return "\n".join(lines)
