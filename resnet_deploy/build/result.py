"""What ``build`` produced, as data (:class:`BuildResult`) and as the lines of its text summary."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..info import ModelInfo
from ..passes import PassReport

#: TensorRT warnings listed in the text summary; the rest are counted (``--verbose`` prints the builder's log)
MAX_TENSORRT_WARNINGS = 3


@dataclass
class BuildResult:
    """What was built, by which passes, and where it went."""

    output: Path
    backend: str
    precision: str
    info: ModelInfo | None
    source: str
    reports: list[PassReport] = field(default_factory=list)
    int8: Any = None  # precision.ptq.Int8Result
    engine: Any = None  # backends.tensorrt.builder.EngineBuildReport
    emitted_onnx: Path | None = None
    calib_cache_written: Path | None = None
    calibration_data: str | None = None
    residual_fusion: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    output_bytes: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "backend": self.backend,
            "precision": self.precision,
            "source": self.source,
            # the ModelInfo's own types (numbers, lists), not the all-strings form ONNX metadata needs
            "model": asdict(self.info) if self.info else None,
            "passes": [r.to_dict() for r in self.reports],
            "int8": self.int8.to_dict() if self.int8 is not None else None,
            "engine": self.engine.to_dict() if self.engine is not None else None,
            "emitted_onnx": str(self.emitted_onnx) if self.emitted_onnx else None,
            "calib_cache_written": str(self.calib_cache_written) if self.calib_cache_written else None,
            "calibration_data": self.calibration_data,
            "residual_fusion": self.residual_fusion,
            "notes": list(self.notes),
            "warnings": list(self.warnings),
            "output_bytes": self.output_bytes,
            "seconds": round(self.seconds, 3),
        }

    def summary_lines(self) -> list[str]:
        """Human summary: what each pass changed, calibration, output."""
        lines = [f"source: {self.source}"]
        for r in self.reports:
            lines.append(f"pass {r}")
        if self.int8 is not None:
            q = self.int8
            params = ", ".join(f"{k}={v}" for k, v in q.params.items())
            how = "reused from cache" if q.source == "cache" else f"{q.samples} images of {self.calibration_data}"
            lines.append(f"calibration: {q.method} ({params}); {how}; Q/DQ placement: {q.placement}")
        if self.residual_fusion:
            lines.append(f"residual fusion: {self.residual_fusion.get('chosen')}")
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"WARNING: {w}" for w in self.warnings]
        if self.engine is not None:  # what the TensorRT build said (ignored options, lean runtime, ...)
            shown = self.engine.warnings[:MAX_TENSORRT_WARNINGS]
            lines += [f"WARNING: TensorRT: {w}" for w in shown]
            if len(self.engine.warnings) > len(shown):
                more = len(self.engine.warnings) - len(shown)
                lines.append(f"WARNING: TensorRT: {more} more warning(s) (build --verbose shows TensorRT's whole log)")
        what = "engine" if self.backend == "tensorrt" else "ONNX"
        if self.backend == "openvino" and Path(self.output).suffix.lower() == ".xml":
            what = "OpenVINO IR (and its .bin)"
        lines.append(
            f"wrote {what} {self.output} ({self.output_bytes / 1e6:.2f} MB, {self.precision}, {self.backend}) "
            f"in {self.seconds:.1f} s"
        )
        if self.engine is not None:
            lines.append(f"sidecar: {self.engine.sidecar_path}")
        if self.emitted_onnx:
            lines.append(f"ONNX: {self.emitted_onnx}")
        if self.calib_cache_written:
            lines.append(f"calibration cache: {self.calib_cache_written}")
        return lines
