"""Turning command-line model specs into benchmark targets, and adding same-weights baselines."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..backends.base import InferenceModel
from ..backends.loader import load, model_kind
from ..info import ModelInfo
from ..models.bundled import bundled_checkpoints
from .groups import group_key
from .macs import MacCount, count_macs_onnx, count_macs_torch
from .spec import Runner, Target


def _label(info: ModelInfo | None, path: Path | None, precision: str, backend: str, suffix: str = "") -> str:
    name = (info.name or info.arch) if info else (path.stem if path else "model")
    return f"{name} {precision} {backend}{suffix}"


def count_for(model: InferenceModel, info: ModelInfo | None) -> MacCount | None:
    """MACs (and the largest activation) per image: from the ONNX graph when the model is an ONNX file, else from
    the architecture."""
    path = model.path
    if path is not None and path.suffix.lower() == ".onnx":
        from ..onnx_io import load_onnx

        return count_macs_onnx(load_onnx(path, check=False), info.input_size if info else None)
    module = getattr(model, "module", None)
    if module is not None and info is not None:
        return count_macs_torch(module, (1, info.in_channels, info.input_size, info.input_size))
    if info is not None:
        from ..models.registry import ARCHITECTURES, build_model  # a network on the CPU, only to count MACs

        if info.arch in ARCHITECTURES:
            net = build_model(info.arch, info.num_classes, info.in_channels)
            return count_macs_torch(net, (1, info.in_channels, info.input_size, info.input_size))
    return None


def macs_for(model: InferenceModel, info: ModelInfo | None) -> int | None:
    """MACs per image (see :func:`count_for`)."""
    count = count_for(model, info)
    return count.total if count is not None else None


def _load_model(
    spec: str, threads: int | None, device: str, cuda_graphs: bool, runtime: str | None = None
) -> InferenceModel:
    kind = model_kind(spec)
    if kind in ("onnx", "ir"):
        return load(spec, threads=threads, runtime=runtime)
    if kind == "engine":
        return load(spec, cuda_graphs=cuda_graphs)
    return load(spec, device=device)


def load_target(
    spec: str, threads: int | None = None, device: str = "cpu", cuda_graphs: bool = True, runtime: str | None = None
) -> Target:
    """A target for anything ``resnet_deploy.load`` accepts, or a checkpoint (run in PyTorch eager); ``runtime``
    says what runs an ``.onnx`` (ONNX Runtime by default, or OpenVINO)."""
    model = _load_model(spec, threads, device, cuda_graphs, runtime)
    info = model.info
    on_cuda = model.backend == "tensorrt" or str(getattr(model, "device", "cpu")).startswith("cuda")
    dev = "cuda" if on_cuda else "cpu"
    count = count_for(model, info)
    target = Target(
        label=_label(info, model.path, model.precision, model.backend),
        model=model,
        source=spec,
        group=group_key(info),
        macs_per_image=count.total if count is not None else None,
        activation_values=count.largest_activation if count is not None else None,
        device=dev,
    )
    if dev == "cuda":
        target.make_runner = _cuda_runner_factory(target, cuda_graphs)
    return target


def _cuda_runner_factory(target: Target, cuda_graphs: bool) -> Any:
    from . import gpu

    model = target.model
    if model.backend == "tensorrt":
        return lambda: gpu.TensorRTCudaRunner(model, cuda_graphs=cuda_graphs)
    half = bool(getattr(model, "half", False))
    return lambda: gpu.TorchCudaRunner(model.module, model.input_dtype, half, False, cuda_graphs)  # type: ignore[attr-defined]


def baseline_weights(info: ModelInfo, weights: str | None) -> str | None:
    """Where the weights of ``info``'s model can be found: ``weights`` if given, else its bundled checkpoint."""
    if weights:
        return weights
    if info.name and info.name in bundled_checkpoints():
        return info.name
    ref = info.extra.get("weights") if info.extra else None
    if ref and Path(ref).is_file():
        return ref
    return None


def add_baselines(
    targets: list[Target],
    weights: str | None = None,
    threads: int | None = None,
    device: str = "cpu",
    cuda_graphs: bool = True,
) -> tuple[list[Target], list[str]]:
    """Targets plus, per group: ONNX Runtime FP32 and PyTorch eager FP32 on the same weights, and on a GPU
    PyTorch FP16 channels-last with CUDA graphs. Returns (targets, notes about baselines that could not be made)."""
    from ..backends.onnxruntime import OnnxRuntimeModel
    from ..backends.torch_eager import TorchModel
    from ..build import export_onnx
    from ..models.weights import load_model

    out = list(targets)
    notes: list[str] = []
    seen: set[str] = set()
    for t in targets:
        info = t.model.info
        if info is None or t.group is None:
            notes.append(f"no baselines for {t.label}: it carries no model metadata (architecture unknown)")
            continue
        if t.group in seen:
            continue
        seen.add(t.group)
        members = [x for x in out if x.group == t.group]
        src = baseline_weights(info, weights)
        if src is None:
            notes.append(
                f"no same-weights baselines for {t.label}: its weights are not reachable (pass --weights CHECKPOINT)"
            )
            continue
        module, winfo = load_model(info.arch, src)
        if group_key(winfo) != t.group and weights is None:
            notes.append(f"baseline weights {src} describe {group_key(winfo)}, not {t.group}: skipped")
            continue
        count = count_macs_torch(module, (1, winfo.in_channels, winfo.input_size, winfo.input_size))
        macs = count.total
        if not any(x.backend == "onnxruntime" and x.precision == "fp32" for x in members):
            proto, _ = export_onnx(module, winfo)
            ort = OnnxRuntimeModel(proto, threads=threads)
            out.append(
                Target(
                    label=_label(winfo, None, "fp32", "onnxruntime"),
                    model=ort,
                    source=f"{src} exported to ONNX",
                    role="baseline",
                    group=t.group,
                    macs_per_image=count_macs_onnx(proto).total,
                    activation_values=count.largest_activation,
                )
            )
        if not any(x.backend == "pytorch" and x.precision == "fp32" and x.device == "cpu" for x in members):
            out.append(
                Target(
                    label=_label(winfo, None, "fp32", "pytorch"),
                    model=TorchModel(module, winfo),
                    source=str(src),
                    role="baseline",
                    group=t.group,
                    macs_per_image=macs,
                    activation_values=count.largest_activation,
                )
            )
        if device == "cuda":
            out.extend(gpu_baselines(module, winfo, t.group, str(src), macs, cuda_graphs))
    return out, notes


def gpu_baselines(
    module: Any, info: ModelInfo, group: str | None, source: str, macs: int | None, cuda_graphs: bool = True
) -> list[Target]:
    """PyTorch on CUDA: FP32 and FP16 channels-last, CUDA graphs (needs a CUDA GPU)."""
    import copy

    from ..backends.torch_eager import TorchModel
    from . import gpu

    out = []

    def factory(m: Any, h: bool) -> Callable[[], Runner]:
        return lambda: gpu.TorchCudaRunner(m, np.dtype(np.float32), h, h, cuda_graphs)

    for half in (False, True):
        m = copy.deepcopy(module)
        model = TorchModel(m, info, device="cuda", half=half)
        prec = "fp16" if half else "fp32"
        label = _label(info, None, prec, "pytorch-cuda", " channels-last" if half else "")
        out.append(
            Target(
                label=label,
                model=model,
                source=source,
                role="baseline",
                group=group,
                macs_per_image=macs,
                device="cuda",
                make_runner=factory(model.module, half),
            )
        )
    return out
