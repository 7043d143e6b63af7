"""The Python API behind every CLI command: list models, export, inspect and run inference.

The CLI modules only parse arguments and print; everything they do is reachable from here.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._io import atomic_path, check_writable
from .errors import UserError

if TYPE_CHECKING:
    import onnx

    from .backends.base import InferenceModel
    from .models.weights import ModelInfo
    from .passes import PassReport

ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")
STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")

# Stage layouts per architecture, so parameter counts need no network built (resnet152 takes seconds even on the
# meta device). tests/models/test_resnet.py checks every entry against the real modules.
_LAYOUTS: dict[str, tuple[str, tuple[int, ...]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
    "resnet50_small": ("bottleneck", (3, 4, 6, 3)),
    "resnet20": ("cifar", (3,)),
    "resnet32": ("cifar", (5,)),
    "resnet44": ("cifar", (7,)),
    "resnet56": ("cifar", (9,)),
    "resnet110": ("cifar", (18,)),
}


# --------------------------------------------------------------------------------------------------- models


def _count_imagenet(block: str, layers: Sequence[int], num_classes: int, in_channels: int, small: bool) -> int:
    width = 16 if small else 64
    expansion = 4 if block == "bottleneck" else 1
    total = in_channels * width * (9 if small else 49) + 2 * width  # stem conv + bn
    inplanes = width
    for stage, blocks in enumerate(layers):
        planes = width * 2**stage
        for i in range(blocks):
            if block == "basic":
                total += inplanes * planes * 9 + planes * planes * 9 + 4 * planes
            else:
                total += inplanes * planes + planes * planes * 9 + planes * planes * expansion
                total += 2 * (2 * planes + planes * expansion)
            if i == 0 and (stage > 0 or inplanes != planes * expansion):
                total += inplanes * planes * expansion + 2 * planes * expansion  # downsample conv + bn
            inplanes = planes * expansion
    return total + inplanes * num_classes + num_classes


def _count_cifar(n: int, num_classes: int, in_channels: int) -> int:
    total = in_channels * 16 * 9 + 2 * 16
    inplanes = 16
    for planes in (16, 32, 64):
        for _ in range(n):
            total += inplanes * planes * 9 + planes * planes * 9 + 4 * planes  # option-A shortcuts: no weights
            inplanes = planes
    return total + 64 * num_classes + num_classes


def parameter_count(arch: str, num_classes: int | None = None, in_channels: int = 3) -> int:
    """Trainable parameters of ``arch`` (default class count of its family when ``num_classes`` is None)."""
    from .models.registry import build_model, get_arch

    spec = get_arch(arch)
    num_classes = num_classes or spec.default_num_classes
    layout = _LAYOUTS.get(arch)
    if layout is None:  # an architecture registered later: count a network on the meta device (no memory)
        import torch

        with torch.device("meta"):
            net = build_model(arch, num_classes, in_channels)
        return sum(p.numel() for p in net.parameters())
    kind, layers = layout
    if kind == "cifar":
        return _count_cifar(layers[0], num_classes, in_channels)
    return _count_imagenet(kind, layers, num_classes, in_channels, small=spec.family == "small")


@dataclass
class ArchitectureEntry:
    name: str
    family: str
    block: str
    input_size: int
    num_classes: int
    parameters: int
    description: str


@dataclass
class CheckpointEntry:
    name: str
    path: str
    arch: str | None = None
    dataset: str | None = None
    num_classes: int | None = None
    in_channels: int | None = None
    input_size: int | None = None
    top1: float | None = None
    error: str | None = None  # set when the file's metadata cannot be read


def list_architectures() -> list[ArchitectureEntry]:
    """Every registered architecture, with its parameter count at its default class count."""
    from .models.registry import ARCHITECTURES

    out = []
    for spec in ARCHITECTURES.values():
        nc = spec.default_num_classes
        out.append(
            ArchitectureEntry(
                spec.name,
                spec.family,
                spec.block,
                spec.default_input_size,
                nc,
                parameter_count(spec.name, nc),
                spec.description,
            )
        )
    return out


def list_checkpoints() -> list[CheckpointEntry]:
    """The checkpoints bundled with the package, described from their metadata (tensors are not read)."""
    from safetensors import safe_open

    from .models.weights import ModelInfo, bundled_checkpoints

    out = []
    for name, path in bundled_checkpoints().items():
        entry = CheckpointEntry(name=name, path=str(path))
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
            info = ModelInfo.from_metadata(meta, path.name)
        except UserError as exc:
            entry.error = str(exc)
        except Exception as exc:  # safetensors' own error types for a damaged file
            entry.error = f"unreadable ({type(exc).__name__})"
        else:
            entry.arch, entry.dataset, entry.top1 = info.arch, info.dataset, info.top1
            entry.num_classes, entry.in_channels, entry.input_size = info.num_classes, info.in_channels, info.input_size
        out.append(entry)
    return out


def models_catalog() -> dict[str, Any]:
    """What ``resnet-deploy models --json`` prints: ``{"architectures": [...], "checkpoints": [...]}``."""
    return {
        "architectures": [asdict(a) for a in list_architectures()],
        "checkpoints": [asdict(c) for c in list_checkpoints()],
    }


# --------------------------------------------------------------------------------------------------- export


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    """Node count per op type (domain-qualified outside the standard domains), most frequent first."""
    counts = Counter(
        n.op_type if n.domain in STANDARD_DOMAINS else f"{n.domain}::{n.op_type}" for n in model.graph.node
    )
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass
class ExportResult:
    """What :func:`export_model` wrote and what the passes did."""

    path: Path
    info: ModelInfo
    reports: list[PassReport]
    op_counts: dict[str, int]
    size_bytes: int
    opset: int
    weights: str | None
    seconds: float

    def report(self, name: str) -> PassReport | None:
        return next((r for r in self.reports if r.name == name), None)

    def summary(self) -> str:
        """One paragraph for humans."""
        info = self.info
        sim, fold = self.report("onnxsim"), self.report("fold_batchnorm")
        removed = sim.changes.get("nodes_removed", 0) if sim else 0
        folded = fold.changes.get("batchnorm_folded", 0) if fold else 0
        ops = ", ".join(f"{k} {v}" for k, v in self.op_counts.items())
        src = f"weights {self.weights}" if self.weights else "random weights (no --weights)"
        text = (
            f"Exported {info.arch} ({src}; {info.num_classes} classes, input N x {info.in_channels} x "
            f"{info.input_size} x {info.input_size}) to {self.path} ({self.size_bytes / 1e6:.1f} MB, opset "
            f"{self.opset}, {self.seconds:.1f} s). onnxsim removed {removed} nodes; {folded} BatchNormalization "
            f"folded into Conv. Ops: {ops}."
        )
        notes = [n for r in self.reports for n in r.notes]
        if notes:
            text += " Notes: " + "; ".join(notes) + "."
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "arch": self.info.arch,
            "weights": self.weights,
            "info": asdict(self.info),
            "opset": self.opset,
            "size_bytes": self.size_bytes,
            "seconds": round(self.seconds, 3),
            "op_counts": self.op_counts,
            "passes": [r.to_dict() for r in self.reports],
        }


def _max_opset() -> int:
    try:
        from torch.onnx._constants import ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET

        return int(ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET)
    except ImportError:  # private constant; newer torch may move it
        return 20


def export_model(
    arch: str | None = None,
    weights: str | Path | None = None,
    out: str | Path = "model.onnx",
    *,
    num_classes: int | None = None,
    in_channels: int | None = None,
    input_size: int | None = None,
    opset: int = 17,
) -> ExportResult:
    """Load ``arch`` (with ``weights``: a file or bundled checkpoint name), export it to ONNX, simplify, fold
    BatchNorm and write ``out`` atomically. ``arch`` may be None when the weights are a resnet-deploy checkpoint."""
    from .export import export_onnx, save_onnx
    from .models.weights import load_model

    out = check_writable(out)  # before the slow part
    if not 17 <= opset <= _max_opset():
        raise UserError(f"opset {opset} is not supported (choose 17..{_max_opset()})")
    if input_size is not None and not 1 <= input_size <= 4096:
        raise UserError(f"input size {input_size} is out of range (1..4096)")
    if weights is None and num_classes is None and arch is not None:
        from .models.registry import get_arch

        num_classes = get_arch(arch).default_num_classes  # random weights: the family's usual head
    start = time.perf_counter()
    model, info = load_model(arch, weights, num_classes=num_classes, in_channels=in_channels, input_size=input_size)
    proto, reports = export_onnx(model, info, opset=opset)
    save_onnx(proto, out)
    return ExportResult(
        path=out,
        info=info,
        reports=reports,
        op_counts=op_counts(proto),
        size_bytes=out.stat().st_size,
        opset=opset,
        weights=None if weights is None else str(weights),
        seconds=time.perf_counter() - start,
    )


# --------------------------------------------------------------------------------------------------- inspect


def _value_info(v: onnx.ValueInfoProto) -> dict[str, Any]:
    import onnx

    t = v.type.tensor_type
    dims: list[int | str | None] = []
    for d in t.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or None))
    dtype = onnx.TensorProto.DataType.Name(t.elem_type).lower() if t.elem_type else "unknown"
    return {"name": v.name, "shape": dims, "dtype": dtype}


def inspect_onnx(path: str | Path) -> dict[str, Any]:
    """Describe an ONNX file: ops, I/O, opset, resnet-deploy metadata, precision, weights, Q/DQ and plugin nodes."""
    import onnx
    from onnx import numpy_helper

    from .backends.onnxruntime import graph_precision
    from .export import METADATA_PREFIX, info_from_onnx, load_onnx

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
        checker = "failed: " + (str(exc).strip().splitlines() or ["?"])[0]
    graph = model.graph
    init_names = {t.name for t in graph.initializer}
    init_bytes = 0
    n_params = 0
    for t in graph.initializer:
        arr = numpy_helper.to_array(t)
        init_bytes += arr.nbytes
        n_params += arr.size
    ops = op_counts(model)
    plugins = Counter(f"{n.domain}::{n.op_type}" for n in graph.node if n.domain not in STANDARD_DOMAINS)
    try:
        info = info_from_onnx(model)
        info_dict: dict[str, Any] | None = None if info is None else asdict(info)
        info_error = None
    except UserError as exc:
        info_dict, info_error = None, str(exc)
    other_meta = {p.key: p.value for p in model.metadata_props if not p.key.startswith(METADATA_PREFIX)}
    return {
        "path": str(path),
        "format": "onnx",
        "size_bytes": path.stat().st_size,
        "ir_version": model.ir_version,
        "opset": {(o.domain or "ai.onnx"): o.version for o in model.opset_import},
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "checker": checker,
        "precision": graph_precision(model),
        "inputs": [_value_info(v) for v in graph.input if v.name not in init_names],
        "outputs": [_value_info(v) for v in graph.output],
        "nodes": len(graph.node),
        "op_counts": ops,
        "initializers": len(graph.initializer),
        "initializer_bytes": init_bytes,
        "parameters": n_params,
        "qdq_nodes": ops.get("QuantizeLinear", 0) + ops.get("DequantizeLinear", 0),
        "qdq_placement": next((p.value for p in model.metadata_props if p.key == "resnet_deploy.qdq_placement"), None),
        "batchnorm_nodes": ops.get("BatchNormalization", 0),
        "plugin_nodes": dict(plugins),
        "model_info": info_dict,
        "model_info_error": info_error,
        "metadata": other_meta,
    }


def _engine_inspector() -> Any:
    trt_inspect: Any
    try:
        from .backends.tensorrt import inspect as trt_inspect
    except ImportError:
        trt_inspect = None
    if trt_inspect is None or not hasattr(trt_inspect, "inspect_engine"):
        raise UserError("engine inspection needs resnet_deploy.backends.tensorrt.inspect, which is not available")
    return trt_inspect


def inspect_model(path: str | Path) -> dict[str, Any]:
    """:func:`inspect_onnx` for ONNX files; the TensorRT backend's engine inspection for .engine/.plan files."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found" if not path.exists() else f"{path} is not a file")
    if path.suffix.lower() in ENGINE_SUFFIXES:
        result = _engine_inspector().inspect_engine(path)
        return {"format": "engine", **result} if isinstance(result, dict) else {"format": "engine", "engine": result}
    return inspect_onnx(path)


# --------------------------------------------------------------------------------------------------- infer


def load_npy(path: str | Path, input_dtype: np.dtype[Any] | None = None) -> np.ndarray:
    """Read an untrusted ``.npy`` batch (N, C, H, W) or single image (C, H, W) as a 4-D array.

    Pickled (object) arrays are refused; float arrays are cast to ``input_dtype``, other dtypes are an error
    (integer pixels need the model's preprocessing, which images get and raw arrays cannot).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"input {path} not found")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{path} is not a .npy array ({first})") from None
    if not isinstance(arr, np.ndarray):  # an .npz archive
        close = getattr(arr, "close", None)
        if close is not None:
            close()
        raise UserError(f"{path} is a zip archive (.npz?), not one array saved with numpy.save")
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise UserError(f"{path} has shape {arr.shape}; expected (N, C, H, W) or (C, H, W)")
    if arr.dtype.kind != "f":
        raise UserError(f"{path} holds {arr.dtype} values; expected floats (preprocessed model input)")
    if input_dtype is not None and np.dtype(input_dtype).kind == "f":
        arr = arr.astype(input_dtype, copy=False)
    if not np.isfinite(arr).all():
        raise UserError(f"{path} contains NaN or infinite values")
    return np.ascontiguousarray(arr)


def _info_for_images(model: InferenceModel) -> ModelInfo:
    from .models.weights import ModelInfo

    if model.info is not None:
        return model.info
    shape = model.input_shape
    if len(shape) != 4 or shape[1] is None or shape[2] is None or shape[2] != shape[3]:
        raise UserError(
            f"the model (input {model.describe_shape()}) carries no resnet-deploy metadata and no fixed square input "
            "size; pass a preprocessed array with --input X.npy"
        )
    return ModelInfo(arch="unknown", in_channels=int(shape[1]), input_size=int(shape[2]))


def load_images(paths: Sequence[str | Path], model: InferenceModel) -> np.ndarray:
    """Decode and preprocess image files for ``model`` (resize/crop/normalise per its ModelInfo)."""
    from .data.preprocess import load_image

    info = _info_for_images(model)
    batch = np.stack([load_image(p, info) for p in paths])
    return batch.astype(model.input_dtype, copy=False)


@dataclass
class Predictions:
    """Logits and the top-k classes for each input."""

    sources: list[str]
    logits: np.ndarray
    probs: np.ndarray  # (N, k) softmax probabilities of the top-k classes, best first
    indices: np.ndarray  # (N, k)
    labels: list[str] | None = None
    model: str = ""
    backend: str = ""
    precision: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def label(self, index: int) -> str:
        if self.labels is not None and 0 <= index < len(self.labels):
            return self.labels[index]
        return f"class {index}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "backend": self.backend,
            "precision": self.precision,
            "results": [
                {
                    "input": src,
                    "top": [
                        {
                            "index": int(i),
                            "label": self.label(int(i)),
                            "prob": float(p),
                            "logit": float(self.logits[row, i]),
                        }
                        for p, i in zip(self.probs[row], self.indices[row], strict=True)
                    ],
                }
                for row, src in enumerate(self.sources)
            ],
        }


def topk(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(softmax probabilities, indices) of the ``k`` largest logits per row, best first."""
    logits = logits.astype(np.float64)
    k = max(1, min(k, logits.shape[1]))
    idx = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = z / z.sum(axis=1, keepdims=True)
    return np.take_along_axis(probs, idx, axis=1), idx


def predict(
    model: InferenceModel,
    inputs: np.ndarray | str | Path | None = None,
    *,
    images: Sequence[str | Path] = (),
    top_k: int = 5,
) -> Predictions:
    """Run a loaded model on an array (N, C, H, W) or (C, H, W), a ``.npy`` file, or image files (one of them)."""
    if (inputs is None) == (not images):
        raise UserError("give either an .npy input or image files (one of them)")
    if top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {top_k}")
    if images:
        batch = load_images(images, model)
        sources = [str(p) for p in images]
    else:
        name = "input"
        if not isinstance(inputs, np.ndarray):
            assert inputs is not None
            name, inputs = Path(inputs).name, load_npy(inputs)
        batch = inputs[None] if inputs.ndim == 3 else inputs
        if batch.dtype.kind == "f" and model.input_dtype.kind == "f":
            batch = batch.astype(model.input_dtype, copy=False)
        sources = [f"{name}[{i}]" for i in range(batch.shape[0])]
    logits = np.asarray(model.predict(batch), dtype=np.float32)
    if logits.ndim != 2 or logits.shape[0] != batch.shape[0]:
        raise UserError(f"the model's output has shape {logits.shape}; expected (N, classes)")
    probs, idx = topk(logits, top_k)
    labels = model.info.labels if model.info is not None else None
    if labels is not None and len(labels) != logits.shape[1]:
        labels = None  # labels for another head would mislabel classes
    return Predictions(
        sources=sources,
        logits=logits,
        probs=probs,
        indices=idx,
        labels=labels,
        model=str(model.path) if model.path else (model.info.arch if model.info else ""),
        backend=model.backend,
        precision=model.precision,
    )


def load_runtime_model(spec: str | Path, arch: str | None = None, input_size: int | None = None) -> InferenceModel:
    """An .onnx file or TensorRT engine (via :func:`resnet_deploy.runtime.load`), or a PyTorch checkpoint (file
    or bundled name) in the eager backend. ``arch`` is needed only for checkpoints that do not name it;
    ``input_size`` overrides a checkpoint's (ONNX graphs and engines have theirs fixed)."""
    from .models.weights import bundled_checkpoints

    if str(spec) in bundled_checkpoints() or Path(spec).suffix.lower() in CHECKPOINT_SUFFIXES:
        from .backends.torch_eager import TorchModel
        from .models.weights import load_model, resolve_weights

        module, info = load_model(arch, spec, input_size=input_size)
        model = TorchModel(module, info)
        model.path = resolve_weights(spec)  # reports then name the file, as for ONNX models and engines
        return model
    for flag, value in (("--arch", arch), ("--input-size", input_size)):
        if value is not None:
            raise UserError(f"{flag} applies to PyTorch checkpoints, not to {spec}")
    if not Path(spec).exists():
        raise UserError(f"model {spec} not found (not a file, nor a bundled checkpoint name)")
    if Path(spec).suffix.lower() not in (".onnx", *ENGINE_SUFFIXES) and Path(spec).is_file():
        raise UserError(
            f"{spec} is not a model: expected .onnx, a TensorRT engine ({', '.join(ENGINE_SUFFIXES)}), "
            f"or a checkpoint ({', '.join(CHECKPOINT_SUFFIXES)})"
        )
    from .runtime import load

    return load(spec)


def infer(
    model: str | Path,
    *,
    npy: str | Path | None = None,
    images: Sequence[str | Path] = (),
    top_k: int = 5,
    arch: str | None = None,
    input_size: int | None = None,
    save_logits: str | Path | None = None,
) -> Predictions:
    """Load ``model``, run it on the inputs, optionally save the logits (atomically) to ``save_logits``."""
    # Everything checkable without the model is checked first: loading an engine or a big graph takes seconds.
    if (npy is None) == (not images):
        raise UserError("give either an .npy input or image files (one of them)")
    if top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {top_k}")
    if save_logits is not None:
        check_writable(save_logits)
    array = load_npy(npy) if npy is not None else None
    m = load_runtime_model(model, arch, input_size)
    try:
        preds = predict(m, array, images=images, top_k=top_k)
        if npy is not None:
            preds.sources = [f"{Path(npy).name}[{i}]" for i in range(len(preds.sources))]
    finally:
        m.close()
    if save_logits is not None:
        save_npy(save_logits, preds.logits)
    return preds


def save_npy(dest: str | Path, arr: np.ndarray) -> Path:
    """``numpy.save`` to ``dest`` exactly (no added suffix), atomically."""
    with atomic_path(dest) as tmp, open(tmp, "wb") as f:
        np.save(f, arr, allow_pickle=False)
    return Path(dest)
