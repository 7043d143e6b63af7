"""What Triton needs to know of a model file, read from the file itself: I/O, batch limits, metadata.

An ``.onnx`` is described from its graph (validated with :func:`resnet_deploy.onnx_io.load_onnx`), an engine from
its sidecar (schema-checked, and its sha256 checked against the engine) -- never by guessing. Dims leave the batch
axis out, as Triton's ``config.pbtxt`` wants them with ``max_batch_size > 0``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..info import ModelInfo, describe_or_shape, from_sidecar

DEFAULT_MAX_BATCH = 32  # ONNX models have no profile; Triton's own default is 4, too small to batch much
DEFAULT_OPT_BATCH = 8
MAX_BATCH_LIMIT = 1 << 16
ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")

# ONNX TensorProto.DataType -> Triton's DataType name (model_config.proto, without the TYPE_ prefix)
_ONNX_TYPES = {
    1: "FP32", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64", 9: "BOOL", 10: "FP16",
    11: "FP64", 12: "UINT32", 13: "UINT64", 16: "BF16",
}  # fmt: skip
# TensorRT data type names as engine sidecars record them (engine_inspector.dtype_name) -> Triton's
_TRT_TYPES = {"FP32": "FP32", "FP16": "FP16", "BF16": "BF16", "INT8": "INT8", "INT32": "INT32", "INT64": "INT64",
              "UINT8": "UINT8", "BOOL": "BOOL"}  # fmt: skip
NUMPY_TYPES = {"FP32": "float32", "FP16": "float16", "FP64": "float64", "UINT8": "uint8", "INT8": "int8",
               "INT16": "int16", "UINT16": "uint16", "INT32": "int32", "UINT32": "uint32", "INT64": "int64",
               "UINT64": "uint64", "BOOL": "bool"}  # fmt: skip


@dataclass(frozen=True)
class Tensor:
    """One input or output as ``config.pbtxt`` declares it."""

    name: str
    dtype: str  # Triton's DataType without TYPE_, e.g. "FP32"
    dims: tuple[int, ...]  # without the batch axis; -1 = any size


@dataclass
class ServedModel:
    """A model file as Triton will serve it."""

    name: str
    path: Path
    platform: str  # "onnxruntime_onnx" | "tensorrt_plan"
    inputs: list[Tensor]
    outputs: list[Tensor]
    max_batch: int
    preferred_batches: list[int]
    info: ModelInfo | None
    precision: str
    profile: tuple[int, int, int] | None = None  # engines: the optimisation profile's (min, opt, max) batch
    built_with: str | None = None  # engines: "TensorRT 10.13.0.35 on NVIDIA H100 (9.0)"
    data: bytes = field(default=b"", repr=False)
    sidecar: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def filename(self) -> str:
        return "model.onnx" if self.platform == "onnxruntime_onnx" else "model.plan"

    @property
    def labels(self) -> list[str] | None:
        """The class names, when the model has them for its (single, N x classes) output."""
        labels = self.info.labels if self.info is not None else None
        if labels and len(self.outputs) == 1 and self.outputs[0].dims == (len(labels),):
            return labels
        return None


def model_name(path: Path) -> str:
    """A Triton model name from a file name: letters, digits, ``_ . -`` (folder names on any file system)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem).strip(".")
    if not name:
        raise UserError(f"cannot name a Triton model after {path.name}: rename the file")
    return name


def preferred_batches(low: int, opt: int, high: int) -> list[int]:
    """Preferred batch sizes inside [low, high]: the profile's optimum and its maximum."""
    return sorted({b for b in (opt, high) if low <= b <= high})


def describe(path: str | Path, max_batch: int | None = None) -> ServedModel:
    """Describe an ``.onnx`` file or a resnet-deploy engine (with its sidecar) for a Triton repository."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model {path} not found")
    if max_batch is not None and not 1 <= max_batch <= MAX_BATCH_LIMIT:
        raise UserError(f"--max-batch must be in [1, {MAX_BATCH_LIMIT}], got {max_batch}")
    suffix = path.suffix.lower()
    if suffix in ONNX_SUFFIXES:
        return _describe_onnx(path, max_batch)
    if suffix in ENGINE_SUFFIXES:
        return _describe_engine(path, max_batch)
    raise UserError(
        f"{path} is not a model Triton serves: expected .onnx or a TensorRT engine ({', '.join(ENGINE_SUFFIXES)}); "
        "build a checkpoint first (resnet-deploy build)"
    )


def _describe_onnx(path: Path, max_batch: int | None) -> ServedModel:
    from ..onnx_io import graph_precision, info_from_onnx, load_onnx

    model = load_onnx(path)
    initializers = {t.name for t in model.graph.initializer}

    def tensors(values: Any, what: str) -> list[Tensor]:
        out = []
        for v in values:
            if v.name in initializers:
                continue  # old exporters list weights as graph inputs
            tt = v.type.tensor_type
            if not v.type.HasField("tensor_type") or tt.elem_type not in _ONNX_TYPES:
                raise UserError(f"{path}: {what} {v.name!r} is not a tensor of a type Triton knows")
            if not tt.HasField("shape") or len(tt.shape.dim) < 2:
                raise UserError(f"{path}: {what} {v.name!r} has no batch axis and dims (shape unknown or 1-D)")
            batch, *rest = tt.shape.dim
            if batch.HasField("dim_value"):
                raise UserError(
                    f"{path}: {what} {v.name!r} has a fixed batch size {batch.dim_value}; Triton batches along a "
                    "dynamic first axis (resnet-deploy export writes one)"
                )
            dims = tuple(int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in rest)
            out.append(Tensor(v.name, _ONNX_TYPES[tt.elem_type], dims))
        return out

    inputs, outputs = tensors(model.graph.input, "input"), tensors(model.graph.output, "output")
    if not inputs or not outputs:
        raise UserError(f"{path}: the graph has no inputs or no outputs")
    high = max_batch or DEFAULT_MAX_BATCH
    shape = [None, *(d if d > 0 else None for d in inputs[0].dims)]
    return ServedModel(
        name=model_name(path),
        path=path,
        platform="onnxruntime_onnx",
        inputs=inputs,
        outputs=outputs,
        max_batch=high,
        preferred_batches=preferred_batches(1, min(DEFAULT_OPT_BATCH, high), high),
        info=describe_or_shape(info_from_onnx(model), shape),
        precision=graph_precision(model),
        data=path.read_bytes(),
    )


def _describe_engine(path: Path, max_batch: int | None) -> ServedModel:
    from ..backends.tensorrt import sidecar as sc

    data, meta, _ = sc.verify_engine_file(path, running=None, gpu=None)  # schema + sha256, no TensorRT needed
    trt, gpu = meta["tensorrt"], meta["gpu"]
    if trt["flavour"] != "tensorrt":
        raise UserError(
            f"{path} was built by TensorRT-RTX {trt['version']}, and Triton's tensorrt_plan backend runs only engines "
            "of full TensorRT: rebuild it with TensorRT on the serving GPU, or serve the .onnx (onnxruntime_onnx)"
        )
    inp = meta["input"]
    lo, opt, hi = inp["min_shape"][0], inp["opt_shape"][0], inp["max_shape"][0]
    if inp["shape"][0] != -1:
        raise UserError(
            f"{path}: the engine's input has a fixed batch size {inp['shape'][0]}; Triton wants one dynamic"
        )
    if lo > 1:
        raise UserError(
            f"{path}: the engine's profile starts at batch {lo}, but Triton sends any batch from 1 to max_batch_size: "
            "rebuild with --min-batch 1"
        )
    if max_batch is not None and max_batch > hi:
        raise UserError(f"--max-batch {max_batch} is above the engine profile's maximum batch {hi} ({path})")
    high = max_batch or hi

    def tensor(t: dict[str, Any], what: str) -> Tensor:
        if t["dtype"] not in _TRT_TYPES:
            raise UserError(f"{path}: {what} {t['name']!r} has type {t['dtype']}, which Triton does not serve")
        if len(t["shape"]) < 2 or t["shape"][0] != -1:
            raise UserError(f"{path}: {what} {t['name']!r} has shape {t['shape']}, not (batch, ...)")
        return Tensor(t["name"], _TRT_TYPES[t["dtype"]], tuple(int(d) for d in t["shape"][1:]))

    built = f"TensorRT {trt['version']}" + (f" on {gpu['name']} ({gpu['compute_capability']})" if gpu else "")
    return ServedModel(
        name=model_name(path),
        path=path,
        platform="tensorrt_plan",
        inputs=[tensor(inp, "input")],
        outputs=[tensor(o, "output") for o in meta["outputs"]],
        max_batch=high,
        preferred_batches=preferred_batches(lo, opt, high),
        info=from_sidecar(meta),
        precision=meta["precision"],
        profile=(lo, opt, hi),
        built_with=built,
        data=data,
        sidecar=meta,
    )
