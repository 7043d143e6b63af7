"""``--residual-fusion auto``: build the native and the plugin engine, time both on this GPU, keep the faster.

A custom plugin is a fusion barrier (TensorRT already fuses conv + add + relu), so whether it wins can only be
measured, per GPU. :func:`build_timed_engines` needs full TensorRT with a GPU and has never run on this project's
machines; :func:`keep_timed_engine`, which moves the winner and its sidecar into place and records both timings,
is tested with TensorRT-RTX engines.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx

from ...errors import UserError
from ...info import ModelInfo
from ...passes.residual_fusion import fuse_residual_add_relu
from . import sidecar
from .builder import EngineBuildOptions, EngineBuildReport, build_engine

AUTO_REASON = "auto: both engines built and timed on this GPU"


def can_time_engines() -> tuple[bool, str]:
    """Whether both engines can be built and timed here (full TensorRT, a GPU, cuda-python), and why not."""
    from . import tensorrt_status
    from .plugin import tensorrt_available

    st = tensorrt_status()
    if not st["can_run"]:
        return False, str(st["reason"])
    if not tensorrt_available():
        return False, f"the plugin needs the full tensorrt module ({st['flavour']} {st['version']} is loaded)"
    return True, ""


@dataclasses.dataclass
class TimedChoice:
    """The engine kept at the output, the graph it was built from, and what the build reports about the choice."""

    engine: EngineBuildReport
    model: onnx.ModelProto
    chosen: str  # "native" | "plugin"
    measurement: dict[str, Any]
    note: str
    fusion_report: Any = None  # the residual-fusion PassReport when the plugin engine won


def build_timed_engines(
    model: onnx.ModelProto,
    out: Path,
    options: EngineBuildOptions,
    info: ModelInfo | None,
    extra: dict[str, Any],
    calibration: dict[str, Any] | None = None,
    say: Callable[[str], None] = lambda _msg: None,
) -> TimedChoice:
    """Build the native and the plugin engine of ``model`` next to ``out``, time both here, keep the faster at
    ``out``. Needs full TensorRT with a GPU. A plugin engine that fails to build or to run (every TensorRT bool
    is checked while timing) loses: the native engine is kept and the note says why."""
    from .plugin import plugin_impl, residual_fusion_choice, time_engines

    impl = plugin_impl(options.plugin_impl)
    fused, rep = fuse_residual_add_relu(model)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".resnet-deploy-auto-") as d:
        reports = {}
        say("building the native engine")
        reports["native"] = build_engine(
            model, Path(d) / "native.engine", options, info, {**extra, "residual_fusion": "native"}, calibration
        )
        say(f"building the plugin engine ({impl})")
        failed = None
        try:
            plugin_options = dataclasses.replace(options, plugin_impl=impl)
            reports["plugin"] = build_engine(
                fused,
                Path(d) / "plugin.engine",
                plugin_options,
                info,
                {**extra, "residual_fusion": "plugin"},
                calibration,
            )
            say("timing both engines on this GPU")
            native_t, plugin_t = time_engines(
                [reports["native"].engine_path, reports["plugin"].engine_path], plugin=impl
            )
        except UserError as exc:
            failed = str(exc)
        if failed is not None:
            engine, note = keep_native_engine(reports["native"], out, failed)
            return TimedChoice(
                engine=engine, model=model, chosen="native", measurement={"plugin_failed": failed}, note=note
            )
        choice = residual_fusion_choice(native_t, plugin_t)
        engine, note = keep_timed_engine(reports, choice, out)
    chosen = str(choice["residual_fusion"])
    return TimedChoice(
        engine=engine,
        model=fused if chosen == "plugin" else model,
        chosen=chosen,
        measurement=choice,
        note=note,
        fusion_report=rep if chosen == "plugin" else None,
    )


def _move_pair(report: EngineBuildReport, meta: dict[str, Any], out: Path) -> EngineBuildReport:
    """Rewrite the sidecar beside the built engine, then move the engine into place and the sidecar last (the
    builder's order: a kill in between leaves a stale sidecar, refused as such)."""
    meta["engine"]["file"] = out.name
    side = sidecar.sidecar_path(out)
    sidecar.write(report.sidecar_path, meta)
    os.replace(report.engine_path, out)
    os.replace(report.sidecar_path, side)
    return dataclasses.replace(report, engine_path=out, sidecar_path=side)


def keep_native_engine(report: EngineBuildReport, out: Path, why: str) -> tuple[EngineBuildReport, str]:
    """Keep the native engine when the plugin engine could not be built or run; the sidecar says why."""
    meta = sidecar.read(report.sidecar_path)
    reason = f"auto: the plugin engine failed ({why}); native kept"
    meta["extra"].update(residual_fusion="native", residual_fusion_reason=reason[:4000])
    return _move_pair(report, meta, out), reason


def keep_timed_engine(
    reports: dict[str, EngineBuildReport], choice: dict[str, Any], out: Path
) -> tuple[EngineBuildReport, str]:
    """Move the engine ``choice`` picked (see :func:`.plugin.residual_fusion_choice`) from ``reports`` (name ->
    report of an engine built elsewhere) to ``out``, recording both timings in its sidecar; returns the moved
    engine's report and a one-line note for the build summary."""
    chosen = str(choice["residual_fusion"])
    report = reports[chosen]
    timing = {
        "residual_fusion": chosen,
        "residual_fusion_reason": AUTO_REASON,
        "residual_fusion_native_median_ms": choice["native_median_ms"],
        "residual_fusion_plugin_median_ms": choice["plugin_median_ms"],
        "residual_fusion_plugin_speedup": choice["plugin_speedup"],
    }
    meta = sidecar.read(report.sidecar_path)
    meta["extra"].update(timing)
    note = (
        f"auto: native {choice['native_median_ms']:.3f} ms, plugin {choice['plugin_median_ms']:.3f} ms median on "
        f"this GPU; kept {chosen}"
    )
    return _move_pair(report, meta, out), note
