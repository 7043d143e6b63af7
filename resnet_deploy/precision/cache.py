"""Calibration cache: the activation ranges of one FP32 graph, reusable to skip calibration.

JSON, written atomically::

    {"format": "resnet-deploy-calibration-cache", "version": 2,
     "graph": {"fingerprint": sha256(graph sha256 + quantized tensor names + shapes),
               "sha256": ..., "tensors": {name: shape}},
     "method": "percentile", "params": {"percentile": 99.99, "num_bins": 2048},
     "data": {"spec": "fashion-mnist:train", "samples": 512, "sha256": hash of the calibration images},
     "amax": {tensor name: float}}

A cache is rejected (one-line :class:`UserError`) when it is malformed, from another tool or version, made for
another graph (weights or topology differ), or lacks a tensor the graph quantizes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from .._io import atomic_write_text, read_json
from ..errors import UserError
from ..passes.qdq.encoding import check_range

FORMAT = "resnet-deploy-calibration-cache"
VERSION = 2  # 2: ranges for the tensors of both Q/DQ placements
MAX_CACHE_BYTES = 16 * 1024**2
MAX_CACHE_DEPTH = 8  # the format nests 4 levels (graph.tensors.<name>.[dims])


def graph_sha256(model: onnx.ModelProto) -> str:
    """Hash of the graph alone (nodes, weights, I/O), not of model-level metadata or producer strings."""
    return hashlib.sha256(model.graph.SerializeToString(deterministic=True)).hexdigest()


def tensor_shapes(model: onnx.ModelProto, tensors: list[str]) -> dict[str, list[int | str]]:
    """Inferred shapes of ``tensors`` (symbolic axes by name, unknown axes as "?")."""
    try:
        g = onnx.shape_inference.infer_shapes(model, strict_mode=False).graph
    except Exception:
        g = model.graph
    infos = {v.name: v for v in [*g.input, *g.value_info, *g.output]}
    out: dict[str, list[int | str]] = {}
    for t in tensors:
        vi = infos.get(t)
        dims: list[int | str] = []
        if vi is not None:
            for d in vi.type.tensor_type.shape.dim:
                dims.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?"))
        out[t] = dims
    return out


def graph_fingerprint(model: onnx.ModelProto, tensors: list[str]) -> dict[str, Any]:
    shapes = tensor_shapes(model, tensors)
    sha = graph_sha256(model)
    h = hashlib.sha256(sha.encode())
    for t in sorted(tensors):
        h.update(f"\n{t}:{shapes[t]}".encode())
    return {"fingerprint": h.hexdigest(), "sha256": sha, "tensors": shapes}


def data_sha256(x: np.ndarray) -> str:
    x = np.ascontiguousarray(x)
    h = hashlib.sha256(f"{x.dtype.str}{x.shape}".encode())
    h.update(x.tobytes())
    return h.hexdigest()


@dataclass
class CalibrationCache:
    """Ranges for one graph plus how they were obtained."""

    graph: dict[str, Any]
    method: str
    params: dict[str, Any]
    data: dict[str, Any]
    amax: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "graph": self.graph,
            "method": self.method,
            "params": self.params,
            "data": self.data,
            "amax": self.amax,
        }
        return json.dumps(doc, indent=1, sort_keys=False) + "\n"

    def sha256(self) -> str:
        """Hash of the cache file's content (recorded in engine sidecars, so an engine names its ranges)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def save(self, path: str | Path) -> Path:
        atomic_write_text(path, self.to_json())
        return Path(path)


def load_cache(path: str | Path) -> CalibrationCache:
    """Read and structurally validate a cache file (matching it to a graph is :func:`check_cache`)."""
    path = Path(path)
    doc = read_json(path, "calibration cache", max_bytes=MAX_CACHE_BYTES, max_depth=MAX_CACHE_DEPTH)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UserError(f"{path} is not a resnet-deploy calibration cache")
    if doc.get("version") != VERSION:
        raise UserError(f"calibration cache {path} has version {doc.get('version')!r}; this tool reads {VERSION}")
    graph, amax = doc.get("graph"), doc.get("amax")
    if not isinstance(graph, dict) or not isinstance(graph.get("fingerprint"), str):
        raise UserError(f"calibration cache {path} has no graph fingerprint")
    if not isinstance(amax, dict) or not amax:
        raise UserError(f"calibration cache {path} has no ranges ('amax')")
    clean: dict[str, float] = {}
    for k, v in amax.items():
        if not isinstance(v, int | float) or isinstance(v, bool):
            raise UserError(f"calibration cache {path}: invalid range {v!r} for tensor '{k}'")
        try:  # the ranges every placement can encode: 1e300 and 1e-300 would give scales float32 cannot hold
            clean[str(k)] = check_range(v, str(k))
        except UserError as exc:
            raise UserError(f"calibration cache {path}: {exc}") from None
    method = doc.get("method")
    params: dict[str, Any] = doc["params"] if isinstance(doc.get("params"), dict) else {}
    data: dict[str, Any] = doc["data"] if isinstance(doc.get("data"), dict) else {}
    if not isinstance(method, str):
        raise UserError(f"calibration cache {path} does not say which method made it")
    samples = data.get("samples", 0)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
        raise UserError(f"calibration cache {path}: data.samples must be a count of images, got {samples!r}")
    return CalibrationCache(graph=graph, method=method, params=params, data=data, amax=clean)


def check_cache(
    cache: CalibrationCache,
    fingerprint: dict[str, Any],
    path: str | Path,
    method: str | None = None,
    percentile: float | None = None,
) -> None:
    """Reject a cache made for another graph, with missing tensors, or with another (explicitly asked) method."""
    missing = [t for t in fingerprint["tensors"] if t not in cache.amax]
    if missing:
        more = f" (+{len(missing) - 1} more)" if len(missing) > 1 else ""
        raise UserError(f"calibration cache {path} is stale or foreign: no range for tensor '{missing[0]}'{more}")
    if cache.graph.get("fingerprint") != fingerprint["fingerprint"]:
        why = "weights or graph changed" if cache.graph.get("sha256") != fingerprint["sha256"] else "tensors differ"
        raise UserError(f"calibration cache {path} is stale or foreign: it was made for another graph ({why})")
    if method is not None and method != cache.method:
        raise UserError(f"calibration cache {path} was made with method '{cache.method}', not '{method}'")
    if percentile is not None and method == "percentile" and cache.params.get("percentile") != percentile:
        raise UserError(
            f"calibration cache {path} was made with percentile {cache.params.get('percentile')}, not {percentile}"
        )
