"""Timing two serialized engines on this GPU, for ``--residual-fusion auto`` (full TensorRT + cuda-python)."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ....errors import UserError
from ..compat import dims_list, numpy_dtype
from .cuda import _check, _driver
from .registration import _require_tensorrt, register_python_plugin, unload_kernels


@dataclass
class EngineTiming:
    path: str
    median_ms: float
    mean_ms: float
    min_ms: float
    iterations: int
    input_shapes: dict[str, tuple[int, ...]]


def time_engines(
    engine_paths: list[str | Path],
    warmup_s: float = 0.2,
    min_iterations: int = 10,
    min_seconds: float = 3.0,
    plugin: str = "python",
) -> list[EngineTiming]:
    """Time each serialized engine like trtexec (warm-up, then >= ``min_iterations`` runs and >= ``min_seconds``)
    at its first profile's opt shapes, on one stream with CUDA events per run; the faster engine is the one with
    the lower median. ``plugin`` picks which registration deserializes plugin engines ("aot" engines need none).

    Every bool TensorRT returns is checked (an engine that cannot run raises ``UserError`` instead of "winning"
    with the time of a failed enqueue). The device's primary context is retained, pushed for the timing and
    popped and released after; the plugin's PTX module is unloaded from it first (``cuModuleUnload``).
    """
    _require_tensorrt()
    from ..log import logger as process_logger
    from ..runtime import make_runtime

    drv = _driver()
    if plugin == "python":
        register_python_plugin()
    _check(drv.cuInit(0))
    device = _check(drv.cuDeviceGet(0))
    ctx = _check(drv.cuDevicePrimaryCtxRetain(device))
    try:
        _check(drv.cuCtxPushCurrent(ctx))
        try:
            runtime = make_runtime(process_logger())
            return _time_all(drv, runtime, engine_paths, warmup_s, min_iterations, min_seconds)
        finally:
            unload_kernels()
            _check(drv.cuCtxPopCurrent())
    finally:
        _check(drv.cuDevicePrimaryCtxRelease(device))


def _time_all(
    drv: Any, runtime: Any, paths: list[str | Path], warmup_s: float, min_iterations: int, min_seconds: float
) -> list[EngineTiming]:
    import tensorrt as trt

    stream = _check(drv.cuStreamCreate(drv.CUstream_flags.CU_STREAM_NON_BLOCKING))
    start, end = _check(drv.cuEventCreate(0)), _check(drv.cuEventCreate(0))
    results = []
    try:
        for path in paths:
            engine = runtime.deserialize_cuda_engine(Path(path).read_bytes())
            if engine is None:
                raise UserError(f"{path}: TensorRT could not deserialize the engine")
            context = engine.create_execution_context()
            if context is None:
                raise UserError(f"{path}: TensorRT could not create an execution context")
            names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            shapes = {}
            for name in names:
                if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                    opt = tuple(dims_list(engine.get_tensor_profile_shape(name, 0)[1]))
                    if not context.set_input_shape(name, opt):
                        raise UserError(f"{path}: TensorRT rejected input shape {opt} for {name}")
                    shapes[name] = opt
            buffers = []
            try:
                for name in names:
                    itemsize = numpy_dtype(engine.get_tensor_dtype(name)).itemsize
                    size = int(np.prod(dims_list(context.get_tensor_shape(name)), dtype=np.int64)) * itemsize
                    ptr = _check(drv.cuMemAlloc(max(size, 1)))  # cuMemAlloc: 256-byte aligned, as TensorRT needs
                    buffers.append(ptr)
                    if not context.set_tensor_address(name, int(ptr)):
                        raise UserError(f"{path}: TensorRT rejected the address of {name}")
                times = _time_one(
                    drv, context, int(stream), start, end, str(path), warmup_s, min_iterations, min_seconds
                )
            finally:
                for ptr in buffers:
                    _check(drv.cuMemFree(ptr))
                del context, engine
            results.append(
                EngineTiming(
                    str(path), statistics.median(times), statistics.fmean(times), min(times), len(times), shapes
                )
            )
    finally:
        _check(drv.cuEventDestroy(start))
        _check(drv.cuEventDestroy(end))
        _check(drv.cuStreamDestroy(stream))
    return results


def _time_one(
    drv: Any,
    context: Any,
    stream: int,
    start: Any,
    end: Any,
    path: str,
    warmup_s: float,
    min_iterations: int,
    min_seconds: float,
) -> list[float]:
    def enqueue() -> None:
        if not context.execute_async_v3(stream):
            raise UserError(f"{path}: TensorRT failed to enqueue the inference")

    times: list[float] = []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < warmup_s:
        enqueue()
        _check(drv.cuStreamSynchronize(stream))
    t0 = time.perf_counter()
    while len(times) < min_iterations or time.perf_counter() - t0 < min_seconds:
        _check(drv.cuEventRecord(start, stream))
        enqueue()
        _check(drv.cuEventRecord(end, stream))
        _check(drv.cuEventSynchronize(end))
        times.append(float(_check(drv.cuEventElapsedTime(start, end))))
    return times


def residual_fusion_choice(native: EngineTiming, plugin: EngineTiming) -> dict[str, Any]:
    """The ``--residual-fusion auto`` decision and what the sidecar records: the engine with the lower median
    wins; a tie keeps native (TensorRT's own fusion, no plugin to ship)."""
    chosen = "plugin" if plugin.median_ms < native.median_ms else "native"
    return {
        "residual_fusion": chosen,
        "engine": plugin.path if chosen == "plugin" else native.path,
        "native_median_ms": round(native.median_ms, 5),
        "plugin_median_ms": round(plugin.median_ms, 5),
        "plugin_speedup": round(native.median_ms / plugin.median_ms, 4) if plugin.median_ms > 0 else None,
        "iterations": {"native": native.iterations, "plugin": plugin.iterations},
        "input_shapes": {k: list(v) for k, v in native.input_shapes.items()},
    }
