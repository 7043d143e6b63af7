"""``resnet_deploy.compile``: an in-memory ``torch.nn.Module`` in, a loaded deployable model out.

What torch2trt (``torch2trt(model, [x])``) and Torch-TensorRT (``torch_tensorrt.compile(model, inputs=[x])``)
users expect: the whole ``build`` pipeline (export, onnxsim, BatchNorm folding, FP16 or calibrated INT8, ONNX
Runtime graph or TensorRT engine) run on the module itself, then :func:`resnet_deploy.load` on what it wrote.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..backends.base import InferenceModel
from ..backends.loader import load
from ..errors import UserError
from ..info import ModelInfo
from .options import BuildOptions, resolve_backend
from .pipeline import Progress, run_pipeline
from .result import BuildResult

if TYPE_CHECKING:
    from torch import nn

#: The :class:`BuildOptions` fields ``compile`` sets itself; every other field may be passed as a keyword.
_OWN = {"output", "arch", "weights", "onnx", "precision", "backend", "calib_data"}


def _example_shape(example_input: Any) -> tuple[int, ...]:
    shape = getattr(example_input, "shape", None)
    if shape is None or len(shape) != 4:
        raise UserError(
            "compile() needs an example input of shape (N, C, H, W), a torch tensor or numpy array, got "
            f"{type(example_input).__name__}{'' if shape is None else ' of shape ' + str(tuple(shape))}"
        )
    n, c, h, w = (int(d) for d in shape)
    if h != w:
        raise UserError(f"compile() builds square inputs (H = W); the example input is {n}x{c}x{h}x{w}")
    return n, c, h, w


def _module_info(module: nn.Module, example_input: Any, labels: list[str] | None, name: str | None) -> ModelInfo:
    """The :class:`ModelInfo` the graph carries: input size and channels from the example, classes from running it."""
    import torch

    if not isinstance(module, torch.nn.Module):
        raise UserError(f"compile() takes a torch.nn.Module, not {type(module).__name__}")
    _, c, h, _ = _example_shape(example_input)
    x = torch.as_tensor(np.asarray(example_input.detach().cpu() if torch.is_tensor(example_input) else example_input))
    with torch.inference_mode():
        out = module.eval()(x.float()[:1])
    if not torch.is_tensor(out) or out.ndim != 2:
        raise UserError(f"compile() builds classifiers with one (N, classes) output; the module returned {out!r:.80}")
    classes = int(out.shape[1])
    if labels is not None and len(labels) != classes:
        raise UserError(f"{len(labels)} labels for a model with {classes} classes")
    info = ModelInfo(
        arch=name or type(module).__name__, num_classes=classes, in_channels=c, input_size=h, labels=labels
    )
    info.validate("compile()")
    return info


def compile(  # noqa: A001 -- the name torch2trt and Torch-TensorRT users look for
    module: nn.Module,
    example_input: Any,
    precision: str = "fp32",
    *,
    backend: str = "onnxruntime",
    output: str | Path | None = None,
    calib_data: str | np.ndarray | None = None,
    labels: list[str] | None = None,
    name: str | None = None,
    progress: Progress | None = None,
    load_options: dict[str, Any] | None = None,
    **options: Any,
) -> InferenceModel:
    """Build ``module`` (an eval-mode classifier taking float32 N x C x S x S) and return the loaded result.

    ``example_input`` (N, C, S, S) gives the input's channels and size; the batch axis stays dynamic.
    ``precision`` "fp32", "fp16" or "int8"; ``backend`` "onnxruntime" (an ONNX graph), "tensorrt" (an engine)
    or "auto". INT8 needs ``calib_data``: a data spec (image folder, ``.npz``/``.npy``) or a float array
    (N, C, S, S) of preprocessed images, taken as they are. ``output`` keeps the built file (else it lives in a
    temporary folder removed with the returned model). Other keywords are :class:`BuildOptions` fields
    (``calib_samples``, ``int8=Int8Options(...)``, ``engine=EngineBuildOptions(...)``, ``residual_fusion``, ...);
    ``load_options`` go to :func:`resnet_deploy.load`. Bad input is a one-line :class:`UserError`.
    """
    clash = sorted(_OWN & options.keys())
    unknown = sorted(options.keys() - {f.name for f in dataclasses.fields(BuildOptions)})
    if clash or unknown:
        bad = ", ".join(clash + unknown)
        raise UserError(f"compile() does not take {bad} (see help(resnet_deploy.compile))")
    if precision == "int8" and calib_data is None:
        raise UserError("compile(precision='int8') needs calib_data: a data spec or an (N, C, H, W) float array")
    info = _module_info(module, example_input, labels, name)
    workdir = Path(tempfile.mkdtemp(prefix="resnet-deploy-compile-"))
    try:
        spec: str | None
        if isinstance(calib_data, np.ndarray):
            chw = (info.in_channels, info.input_size, info.input_size)
            if calib_data.dtype.kind != "f" or calib_data.ndim != 4 or calib_data.shape[1:] != chw:
                raise UserError(
                    f"calib_data array must be float (N, {info.in_channels}, {info.input_size}, {info.input_size}), "
                    f"got {calib_data.dtype} {calib_data.shape}"
                )
            spec = str(workdir / "calibration.npy")
            np.save(spec, calib_data.astype(np.float32))
        else:
            spec = calib_data
        suffix = ".onnx" if backend == "onnxruntime" else ".engine"
        if backend == "auto":
            suffix = ".engine" if resolve_backend(BuildOptions(backend="auto"))[0] == "tensorrt" else ".onnx"
        out = Path(output) if output is not None else workdir / f"model{suffix}"
        build_options = BuildOptions(output=out, precision=precision, backend=backend, calib_data=spec, **options)
        result = compiled(module, info, build_options, progress)
        model = load(result.output, **(load_options or {}))
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    model.build_result = result  # type: ignore[attr-defined]  # what the build did: notes, reports, timings
    weakref.finalize(model, shutil.rmtree, workdir, ignore_errors=True)  # the temporary output lives as long
    return model


def compiled(module: nn.Module, info: ModelInfo, options: BuildOptions, progress: Progress | None) -> BuildResult:
    """Run the build pipeline on ``module``'s export (``info`` describes its input and classes)."""
    from ..export import torch_to_onnx
    from . import stages

    def source(say: stages.Say) -> stages.Source:
        say("export", "torch.onnx export of the in-memory module")
        return stages.Source(torch_to_onnx(module, info, opset=options.opset), info, info.arch, exported=True)

    return run_pipeline(options, source, progress)
