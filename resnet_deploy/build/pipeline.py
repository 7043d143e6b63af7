"""``build``: the pipeline, checkpoint or ONNX in, deployable model out; ``export_model``: its first stages alone.

Every input is validated and the output paths are checked before the slow work; the outputs are written
atomically at the end, the calibration cache last, so an error leaves nothing behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import onnx

from .._io import check_no_collisions, check_writable
from ..data.labels import read_labels
from ..errors import UserError
from ..info import ModelInfo
from ..models.bundled import resolve_weights
from ..onnx_io import op_counts, save_onnx
from ..passes import PassReport
from . import stages
from .options import BuildOptions, check_outputs, resolve_backend, validate
from .result import BuildResult

Progress = Callable[[str, str], None]  # (stage, detail)


def build(options: BuildOptions, progress: Progress | None = None) -> BuildResult:
    """Run the pipeline ``options`` describe, reporting each stage to ``progress(stage, detail)``."""
    return run_pipeline(options, lambda say: stages.load_or_export(options, say), progress)


def run_pipeline(
    options: BuildOptions, load_source: Callable[[stages.Say], stages.Source], progress: Progress | None = None
) -> BuildResult:
    """:func:`build` from the graph ``load_source`` returns (called after every check on the options and outputs):
    a file or checkpoint for ``build``, an in-memory ``nn.Module`` for :func:`resnet_deploy.compile`."""
    start = time.perf_counter()

    def say(stage: str, detail: str) -> None:
        if progress is not None:
            progress(stage, detail)

    validate(options)
    backend, why = resolve_backend(options)
    out = check_outputs(options, backend)
    labels = read_labels(options.labels) if options.labels is not None else None

    source = load_source(say)
    options = stages.apply_shapes(options, source, backend)
    stages.check_static_batch(options, source.model, backend)
    if labels is not None:
        source.info = stages.with_labels(source, labels, options.labels)
    result = BuildResult(
        output=out, backend=backend, precision=options.precision, info=source.info, source=source.description
    )
    if why:
        result.notes.append(why)
        say("backend", why)
    if source.spatial is not None:
        result.notes.append(source.spatial)
    model, reports = stages.export_passes(source, say)
    result.reports.extend(reports)
    model = stages.precision(options, model, source.info, backend, result, say)
    model = stages.residual_fusion(options, model, backend, result, say)
    model = stages.tag(model, options, result)
    model = stages.backend_build(options, model, source.info, backend, result, say)
    stages.write(options, model, backend, result, say)

    result.seconds = time.perf_counter() - start
    return result


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


def export_model(
    arch: str | None = None,
    weights: str | Path | None = None,
    out: str | Path = "model.onnx",
    *,
    num_classes: int | None = None,
    in_channels: int | None = None,
    input_size: int | None = None,
    opset: int = 17,
    progress: Progress | None = None,
) -> ExportResult:
    """Load ``arch`` (with ``weights``: a file or bundled checkpoint name), export it to ONNX, simplify, fold
    BatchNorm and write ``out`` atomically. ``arch`` may be None when the weights are a resnet-deploy checkpoint."""
    from ..export import MIN_OPSET, max_opset
    from ..models.weights import load_model

    out = check_writable(out)  # before the slow part
    check_no_collisions({"-o": out}, {"--weights": resolve_weights(weights) if weights is not None else None})
    if not MIN_OPSET <= opset <= max_opset():
        raise UserError(f"opset {opset} is not supported (choose {MIN_OPSET}..{max_opset()})")
    if input_size is not None and not 1 <= input_size <= 4096:
        raise UserError(f"input size {input_size} is out of range (1..4096)")
    if weights is None and num_classes is None and arch is not None:
        from ..models.registry import get_arch

        num_classes = get_arch(arch).default_num_classes  # random weights: the family's usual head
    start = time.perf_counter()
    say = progress or (lambda _stage, _detail: None)
    say("export", f"loading {weights or arch}")
    net, info = load_model(arch, weights, num_classes=num_classes, in_channels=in_channels, input_size=input_size)
    say("export", "torch.onnx export")
    proto, reports = export_onnx(net, info, opset, say)
    say("write", str(out))
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


def export_onnx(
    net: Any, info: ModelInfo, opset: int = 17, progress: Progress | None = None
) -> tuple[onnx.ModelProto, list[PassReport]]:
    """An in-memory ``torch.nn.Module`` -> the simplified, BatchNorm-folded ONNX graph carrying ``info``."""
    from ..export import torch_to_onnx

    source = stages.Source(torch_to_onnx(net, info, opset=opset), info, info.name or info.arch, exported=True)
    return stages.export_passes(source, progress or (lambda _stage, _detail: None))
