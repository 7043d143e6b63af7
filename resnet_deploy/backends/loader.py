"""``resnet_deploy.load``: one call from a model file or bundled name to a ready :class:`InferenceModel`.

The backend follows from the file: for ``.onnx``, the runtime ``build --backend auto`` recorded in the graph
(:data:`~resnet_deploy.info.RUNTIME_KEY`), else ONNX Runtime, ``runtime=`` overriding both; OpenVINO for IR
``.xml``, TensorRT for engines, PyTorch eager for checkpoints and bundled checkpoint names. Each backend module
is imported only when its kind of model is loaded, so loading an ``.onnx`` never imports PyTorch or TensorRT.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..info import CPU_RUNTIMES, recorded_runtime
from ..models.bundled import bundled_checkpoints
from ..onnx_scan import read_metadata
from .base import InferenceModel
from .openvino import openvino_available

ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")
IR_SUFFIX = ".xml"
#: what runs an ``.onnx``: ``load(..., runtime=...)``, ``--runtime`` of eval and bench
RUNTIMES = CPU_RUNTIMES

_OPTIONS = {
    "onnx": {"providers", "threads", "optimization", "spinning", "runtime"},
    "ir": {"threads", "runtime"},
    "engine": {"device", "cuda_graphs", "sidecar"},
    "checkpoint": {"arch", "input_size", "device", "half"},
}
_OPTIONS_OPENVINO = {"threads", "runtime"}
_WHAT = {
    "onnx": "an ONNX model",
    "ir": "an OpenVINO IR",
    "engine": "a TensorRT engine",
    "checkpoint": "a PyTorch checkpoint",
}


def model_kind(spec: str | Path) -> str:
    """ "onnx", "ir", "engine" or "checkpoint" for what ``spec`` names (by suffix or bundled name), checking it
    exists."""
    if isinstance(spec, str) and spec in bundled_checkpoints():
        return "checkpoint"
    path = Path(spec)
    suffix = path.suffix.lower()
    if not path.exists():
        raise UserError(f"model {spec} not found (not a file, nor a bundled checkpoint name)")
    if not path.is_file():
        raise UserError(f"model {spec} is not a file")
    if suffix == ".onnx":
        return "onnx"
    if suffix in ENGINE_SUFFIXES:
        return "engine"
    if suffix == IR_SUFFIX:
        return "ir"
    if suffix in CHECKPOINT_SUFFIXES:
        return "checkpoint"
    raise UserError(
        f"{spec} is not a model: expected .onnx, an OpenVINO IR (.xml), a TensorRT engine "
        f"({', '.join(ENGINE_SUFFIXES)}), or a checkpoint ({', '.join(CHECKPOINT_SUFFIXES)})"
    )


def model_files(spec: str | Path, flag: str = "MODEL") -> dict[str, Path]:
    """The files loading ``spec`` reads, by what the user typed, for :func:`resnet_deploy._io.check_no_collisions`:
    the model file (a bundled name's checkpoint), and an engine's default sidecar. Empty for a missing file."""
    bundled = bundled_checkpoints()
    if isinstance(spec, str) and spec in bundled:  # the name wins over a file of that name, as in model_kind
        return {flag: bundled[spec]}
    path = Path(spec)
    if not path.exists():
        return {}
    files = {flag: path}
    if path.suffix.lower() in ENGINE_SUFFIXES:
        files[f"{flag}'s sidecar"] = path.with_name(path.name + ".json")
    if path.suffix.lower() == IR_SUFFIX:
        files[f"{flag}'s weights"] = path.with_suffix(".bin")
    return files


def load(spec: str | Path, **options: Any) -> InferenceModel:
    """Load a model for inference: an ``.onnx`` file (ONNX Runtime or OpenVINO), an OpenVINO IR (``.xml``), a
    TensorRT engine (``.engine``/``.plan``/``.trt``), or a PyTorch checkpoint file or bundled checkpoint name
    (PyTorch eager, e.g. ``"fmnist_resnet20"``).

    Options by kind -- ONNX: ``runtime`` ("onnxruntime" or "openvino"; default: the one ``build --backend auto``
    recorded in the graph, else ONNX Runtime, with a warning when that was OpenVINO and it is not installed),
    ``threads`` (default: the cores this process may use), and for ONNX Runtime ``providers``, ``optimization``
    ("all", "basic", "none"), ``spinning`` (False). OpenVINO IR: ``threads``. Engine:
    ``device`` (int), ``cuda_graphs`` (bool), ``sidecar`` (path; default ``<engine>.json``). Checkpoint: ``arch``
    (for files that do not name it), ``input_size``, ``device`` ("cpu", "cuda"), ``half``. Anything wrong -- a
    missing file, an option for another kind, an engine this machine cannot run or that does not match its
    sidecar -- is a one-line :class:`~resnet_deploy.errors.UserError`.
    """
    kind = model_kind(spec)
    unknown = sorted(k for k, v in options.items() if k not in _OPTIONS[kind] and v is not None)
    if unknown:
        flags = ", ".join(unknown)
        if kind != "checkpoint" and set(unknown) <= _OPTIONS["checkpoint"]:
            as_flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
            raise UserError(f"{as_flags} applies to PyTorch checkpoints, not to {spec}")
        raise UserError(f"unknown option(s) {flags} for {_WHAT[kind]} (allowed: {', '.join(sorted(_OPTIONS[kind]))})")
    given = {k: v for k, v in options.items() if v is not None}
    notes: list[str] = []
    runtime = given.pop("runtime", None)
    if runtime is None:
        runtime = "openvino" if kind == "ir" else "onnxruntime"
        if kind == "onnx":
            runtime, notes = onnx_runtime(Path(spec), given)
    model = _load(spec, kind, runtime, given)
    if notes:
        # the CLI shows a model's ``warnings`` (infer, bench, eval); a Python caller gets them as warnings too
        model.warnings = [*getattr(model, "warnings", []), *notes]  # type: ignore[attr-defined]
        for note in notes:
            warnings.warn(note, UserWarning, stacklevel=2)
    return model


def onnx_runtime(path: Path, options: dict[str, Any]) -> tuple[str, list[str]]:
    """(runtime, warnings) for an ``.onnx`` loaded without ``runtime=``: the one ``build --backend auto`` measured
    faster and recorded in the graph, when it can run here. OpenVINO not installed, or options only ONNX Runtime
    takes (``providers``, ``optimization``, ``spinning``), keep ONNX Runtime; the first says so in one line."""
    recorded, warning = recorded_runtime(read_metadata(path), f"{path} (ONNX metadata)")
    notes = [warning] if warning else []
    if recorded != "openvino" or set(options) - _OPTIONS_OPENVINO:
        return "onnxruntime", notes
    if not openvino_available():
        notes.append(
            f"{path} was measured faster on OpenVINO by build --backend auto, but OpenVINO is not installed "
            "(pip install 'resnet-deploy[openvino]'): running it on ONNX Runtime"
        )
        return "onnxruntime", notes
    return "openvino", notes


def _load(spec: str | Path, kind: str, runtime: str, given: dict[str, Any]) -> InferenceModel:
    if kind in ("onnx", "ir") and runtime not in RUNTIMES:
        raise UserError(f"unknown runtime '{runtime}' (choose {' or '.join(RUNTIMES)})")
    if kind == "ir" and runtime != "openvino":
        raise UserError(f"{spec} is OpenVINO IR: only the openvino runtime runs it")
    if kind in ("onnx", "ir") and runtime == "openvino":
        extra = sorted(set(given) - _OPTIONS_OPENVINO)
        if extra:
            raise UserError(f"{', '.join(extra)} applies to ONNX Runtime, not to the openvino runtime")
        from .openvino import OpenVinoModel

        return OpenVinoModel(Path(spec), **given)
    if kind == "onnx":
        from .onnxruntime import OnnxRuntimeModel

        return OnnxRuntimeModel(Path(spec), **given)
    if kind == "engine":
        from .tensorrt.runtime import TensorRTModel

        return TensorRTModel(Path(spec), **given)
    from ..models.bundled import resolve_weights
    from ..models.weights import load_model
    from .torch_eager import TorchModel

    module, info = load_model(given.pop("arch", None), spec, input_size=given.pop("input_size", None))
    model = TorchModel(module, info, **given)
    model.path = resolve_weights(spec)  # reports then name the file, as for ONNX models and engines
    return model
