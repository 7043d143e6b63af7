"""TensorRT side of the fused residual add + ReLU plugin (GPU + TensorRT + cuda-python only).

Three entry points, all importing ``tensorrt`` and ``cuda.bindings`` lazily (importing this module needs neither):

- :func:`register_python_plugin`: a Python ``IPluginV3`` (TensorRT 10.0+, e.g. JetPack 6's 10.3) that launches
  our PTX through the CUDA driver API. Engines built with it need this Python code registered to deserialize.
- :func:`register_aot_plugin`: a ``tensorrt.plugin`` plugin with only an ahead-of-time implementation
  (TensorRT 10.9+): the PTX is embedded in the engine, which then runs without Python (trtexec, C++).
- :func:`time_engines`: times two serialized engines on this GPU, for ``--residual-fusion auto``.

Both registrations use the name/namespace/version of :mod:`resnet_deploy.plugins`, which is what
:func:`resnet_deploy.passes.residual_fusion.fuse_residual_add_relu` writes into the ONNX; register one of them per
process. FP32 and FP16 are offered (the fused graph's Add inputs are float even in Q/DQ INT8 graphs; TensorRT does
not fold DQ -> plugin -> Q into an INT8 plugin). The Python plugin also offers INT8 I/O when the node carries
float attributes ``scale_a``, ``scale_b`` and ``scale_y``.

NEVER RUN: no machine of this project can import ``tensorrt`` (see shared/notes/tensorrt.md), so every line below
is written to NVIDIA's documented API (samples/python/python_plugin, samples/python/quickly_deployable_plugins)
and has never executed. What is tested for real: the kernels (tests/test_kernels_*.py, and on a GPU
benchmarks/bench_residual_kernel.py), the graph rewrite (tests/passes/test_residual_fusion.py), and the pure
helpers at the top of this file (tests/plugins/test_residual_add_relu_trt.py).
"""

# No `from __future__ import annotations`: tensorrt.plugin validates the decorated functions' annotations as
# real objects, not strings.

import statistics
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..backends.tensorrt.compat import dims_list, numpy_dtype
from ..errors import UserError
from ..kernels import BLOCK_SIZE, KERNEL_NAMES, VECTOR_ELEMS, KernelArtifacts, find_kernels
from . import PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION

PLUGIN_ID = f"{PLUGIN_NAMESPACE}::{PLUGIN_NAME}"
_registered: str | None = None  # "python" or "aot": one registration per process

# --- pure helpers (tested on the CPU) ------------------------------------------------------------------------------


def float_bits(value: float) -> int:
    """The int32 whose bits are the float32 ``value``: how the INT8 kernel receives its scales."""
    return int(struct.unpack("<i", struct.pack("<f", value))[0])


def launch_grid(n: int, dtype: str) -> int:
    """Blocks of :data:`BLOCK_SIZE` threads covering ``n`` elements once, one 16-byte vector per thread."""
    per_block = BLOCK_SIZE * VECTOR_ELEMS[dtype]
    return max(1, -(-n // per_block))


def int8_scales(fields: dict[str, float]) -> tuple[float, float, float] | None:
    """The (scale_a, scale_b, scale_y) plugin fields if all three are present and valid, else None."""
    names = ("scale_a", "scale_b", "scale_y")
    if not all(k in fields for k in names):
        return None
    sa, sb, sy = (float(fields[k]) for k in names)
    if not all(np.isfinite(v) for v in (sa, sb, sy)) or sy <= 0:
        raise UserError(f"{PLUGIN_NAME}: INT8 scales must be finite and scale_y > 0, got {sa}, {sb}, {sy}")
    return sa, sb, sy


def _has_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


# --- CUDA driver helpers (GPU only) --------------------------------------------------------------------------------


def _driver() -> Any:
    try:
        from cuda.bindings import driver  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cuda as driver  # older cuda-python layout used by TensorRT 10.x samples
        except ImportError:
            raise UserError("cuda-python is not installed (pip install cuda-python)") from None
    return driver


def tensorrt_available() -> bool:
    """True if the full ``tensorrt`` module imports (a bare ``tensorrt`` namespace folder, as left by the
    TensorRT-RTX wheels, does not count)."""
    try:
        import tensorrt
    except Exception:  # ImportError, or the bindings failing to load libnvinfer
        return False
    return hasattr(tensorrt, "IPluginV3")


def _require_tensorrt() -> None:
    if not tensorrt_available():
        raise UserError("TensorRT's Python package (tensorrt, 10.0+) is not installed: TensorRT plugins need it")


def _check(result: tuple[Any, ...]) -> Any:
    """Unwrap a cuda-python ``(CUresult, value...)`` tuple, raising on error."""
    drv = _driver()
    err, *values = result
    if err != drv.CUresult.CUDA_SUCCESS:
        raise RuntimeError(f"CUDA driver error {err}")
    return values[0] if len(values) == 1 else tuple(values) if values else None


def current_compute_capability() -> int:
    """e.g. 87 for the GPU of the current (or first) CUDA context."""
    drv = _driver()
    _check(drv.cuInit(0))
    try:
        dev = _check(drv.cuCtxGetDevice())
    except RuntimeError:  # no current context
        dev = _check(drv.cuDeviceGet(0))
    attr = drv.CUdevice_attribute
    major = _check(drv.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev))
    minor = _check(drv.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev))
    return int(major) * 10 + int(minor)


class _Kernels:
    """The PTX module JIT-loaded once per CUDA context, with one function handle per dtype."""

    def __init__(self, artifacts: KernelArtifacts) -> None:
        self.artifacts = artifacts
        self._by_context: dict[int, dict[str, Any]] = {}

    def function(self, dtype: str) -> Any:
        drv = _driver()
        ctx = int(_check(drv.cuCtxGetCurrent()))
        funcs = self._by_context.get(ctx)
        if funcs is None:
            _, ptx = self.artifacts.ptx_for(current_compute_capability())
            module = _check(drv.cuModuleLoadData(ptx.read_bytes() + b"\0"))
            funcs = {k: _check(drv.cuModuleGetFunction(module, name.encode())) for k, name in KERNEL_NAMES.items()}
            self._by_context[ctx] = funcs
        return funcs[dtype]

    def launch(
        self, dtype: str, a: int, b: int, y: int, n: int, stream: int, scales: tuple[float, float, float] | None = None
    ) -> None:
        """Enqueue y = relu(a + b) over ``n`` elements; arguments in the entry point's order (inputs, ints, out)."""
        drv = _driver()
        if n > 2**31 - 1:
            raise RuntimeError(f"{PLUGIN_NAME}: {n} elements exceed the kernels' int32 count")
        args: list[np.ndarray] = [np.array([a], np.uint64), np.array([b], np.uint64), np.array([n], np.int32)]
        if dtype == "int8":
            assert scales is not None
            args += [np.array([float_bits(s)], np.int32) for s in scales]
        args.append(np.array([y], np.uint64))
        params = np.array([arg.ctypes.data for arg in args], dtype=np.uint64)
        grid = launch_grid(n, dtype)
        # As NVIDIA's python_plugin sample: kernelParams is an array of pointers to each argument's value.
        func = self.function(dtype)
        _check(drv.cuLaunchKernel(func, grid, 1, 1, BLOCK_SIZE, 1, 1, 0, drv.CUstream(stream), params, 0))


# --- Python IPluginV3 (TensorRT 10.0+) -----------------------------------------------------------------------------


def _already_registered(kind: str) -> bool:
    """True if ``kind`` is registered in this process; a one-line error if the other kind is (one per process)."""
    if _registered is not None and _registered != kind:
        raise UserError(f"{PLUGIN_ID} is already registered as the {_registered} plugin in this process")
    return _registered == kind


def register_python_plugin(artifacts: KernelArtifacts | None = None) -> None:
    """Register the Python ``IPluginV3`` creator for ``resnet_deploy::ResidualAddRelu`` (version 1)."""
    global _registered
    if _already_registered("python"):
        return
    _require_tensorrt()
    import tensorrt as trt

    kernels = _Kernels(artifacts or find_kernels())
    dtypes = {trt.DataType.FLOAT: "float32", trt.DataType.HALF: "float16", trt.DataType.INT8: "int8"}

    class ResidualAddReluPlugin(trt.IPluginV3, trt.IPluginV3OneCore, trt.IPluginV3OneBuild, trt.IPluginV3OneRuntime):
        def __init__(self, scales: tuple[float, float, float] | None = None) -> None:
            trt.IPluginV3.__init__(self)
            trt.IPluginV3OneCore.__init__(self)
            trt.IPluginV3OneBuild.__init__(self)
            trt.IPluginV3OneRuntime.__init__(self)
            self.num_outputs = 1
            self.plugin_namespace = PLUGIN_NAMESPACE
            self.plugin_name = PLUGIN_NAME
            self.plugin_version = PLUGIN_VERSION
            self.timing_cache_id = ""
            self.scales = scales

        def get_capability_interface(self, type: Any) -> Any:
            return self

        def get_output_data_types(self, input_types: list[Any]) -> list[Any]:
            return [input_types[0]]

        def get_output_shapes(self, inputs: list[Any], shape_inputs: list[Any], expr_builder: Any) -> list[Any]:
            return [trt.DimsExprs(inputs[0])]

        def get_fields_to_serialize(self) -> Any:
            fields = []
            if self.scales is not None:
                for name, value in zip(("scale_a", "scale_b", "scale_y"), self.scales, strict=True):
                    data = np.array([value], np.float32)
                    fields.append(trt.PluginField(name, data, trt.PluginFieldType.FLOAT32))  # type: ignore[call-overload]
            return trt.PluginFieldCollection(fields)

        def supports_format_combination(self, pos: int, in_out: list[Any], num_inputs: int) -> bool:
            desc = in_out[pos].desc
            if desc.format != trt.TensorFormat.LINEAR:
                return False
            allowed = {trt.DataType.FLOAT, trt.DataType.HALF}
            if self.scales is not None:
                allowed.add(trt.DataType.INT8)
            if pos == 0:
                return bool(desc.type in allowed)
            return bool(desc.type == in_out[0].desc.type)  # b and y take a's type

        def configure_plugin(self, inp: list[Any], out: list[Any]) -> None:
            pass

        def on_shape_change(self, inp: list[Any], out: list[Any]) -> None:
            a, b = dims_list(inp[0].dims), dims_list(inp[1].dims)
            if a != b:
                raise RuntimeError(f"{PLUGIN_NAME}: input shapes differ ({a} vs {b}), no broadcasting")

        def enqueue(
            self,
            input_desc: list[Any],
            output_desc: list[Any],
            inputs: list[int],
            outputs: list[int],
            workspace: int,
            stream: int,
        ) -> None:
            n = int(np.prod(dims_list(input_desc[0].dims), dtype=np.int64))
            dtype = dtypes[input_desc[0].type]
            kernels.launch(dtype, inputs[0], inputs[1], outputs[0], n, stream, self.scales)

        def attach_to_context(self, context: Any) -> Any:
            return self.clone()

        def get_valid_tactics(self) -> list[int]:
            return []

        def set_tactic(self, tactic: int) -> None:
            pass

        def clone(self) -> "ResidualAddReluPlugin":
            twin = ResidualAddReluPlugin(self.scales)
            twin.__dict__.update(self.__dict__)
            return twin

    class ResidualAddReluCreator(trt.IPluginCreatorV3One):
        def __init__(self) -> None:
            trt.IPluginCreatorV3One.__init__(self)
            self.name = PLUGIN_NAME
            self.plugin_namespace = PLUGIN_NAMESPACE
            self.plugin_version = PLUGIN_VERSION
            # The stubs type names as FallbackString and field_names as PluginFieldCollection_; pybind11 converts
            # str and PluginFieldCollection, as in NVIDIA's python_plugin samples.
            empty = np.array([], np.float32)
            names = ("scale_a", "scale_b", "scale_y")
            fields = [trt.PluginField(k, empty, trt.PluginFieldType.FLOAT32) for k in names]  # type: ignore[call-overload]
            self.field_names = trt.PluginFieldCollection(fields)  # type: ignore[assignment]

        def create_plugin(self, name: str, fc: Any, phase: Any) -> ResidualAddReluPlugin:
            wanted = ("scale_a", "scale_b", "scale_y")
            fields = {f.name: float(np.asarray(f.data).reshape(-1)[0]) for f in fc if f.name in wanted}
            return ResidualAddReluPlugin(int8_scales(fields))

    if not trt.get_plugin_registry().register_creator(ResidualAddReluCreator(), PLUGIN_NAMESPACE):
        raise RuntimeError(f"TensorRT refused to register {PLUGIN_ID}")
    _registered = "python"


# --- tensorrt.plugin AOT plugin (TensorRT 10.9+) -------------------------------------------------------------------


def register_aot_plugin(artifacts: KernelArtifacts | None = None, compute_capability: int | None = None) -> None:
    """Register ``resnet_deploy::ResidualAddRelu`` with ``tensorrt.plugin``: register + autotune + aot_impl only,
    so TensorRT embeds our PTX (for ``compute_capability``, default: this GPU's) in the engine."""
    global _registered
    if _already_registered("aot"):
        return
    _require_tensorrt()
    import tensorrt as trt

    if not _has_module("tensorrt.plugin"):
        raise UserError(f"TensorRT {trt.__version__} has no tensorrt.plugin (AOT plugins need 10.9+)")
    import tensorrt.plugin as trtp

    arts = artifacts or find_kernels()
    _, ptx_path = arts.ptx_for(compute_capability or current_compute_capability())
    ptx = ptx_path.read_bytes()

    # tensorrt.plugin has no type stubs: its decorators are untyped.
    @trtp.register(PLUGIN_ID)  # type: ignore[untyped-decorator]
    def residual_add_relu_desc(a: trtp.TensorDesc, b: trtp.TensorDesc) -> trtp.TensorDesc:
        return a.like()

    @trtp.autotune(PLUGIN_ID)  # type: ignore[untyped-decorator]
    def residual_add_relu_autotune(
        a: trtp.TensorDesc, b: trtp.TensorDesc, outputs: tuple[trtp.TensorDesc]
    ) -> list[trtp.AutoTuneCombination]:
        return [trtp.AutoTuneCombination("FP32|FP16, FP32|FP16, FP32|FP16", "LINEAR")]

    @trtp.aot_impl(PLUGIN_ID)  # type: ignore[untyped-decorator]
    def residual_add_relu_aot(
        a: trtp.TensorDesc, b: trtp.TensorDesc, outputs: tuple[trtp.TensorDesc], tactic: int
    ) -> tuple[str | bytes, str | bytes, trtp.KernelLaunchParams, trtp.SymExprs]:
        dtype = "float32" if a.dtype == trt.float32 else "float16"
        n = a.shape_expr.numel()
        params = trtp.KernelLaunchParams()
        params.grid_x = trtp.cdiv(n, BLOCK_SIZE * VECTOR_ELEMS[dtype])
        params.block_x = BLOCK_SIZE
        params.shared_mem = 0
        extra = trtp.SymIntExprs.from_tuple([trtp.SymInt32(n)])  # the entry point's `int32 n`, between a, b and y
        return KERNEL_NAMES[dtype].encode(), ptx, params, extra

    _registered = "aot"


# --- engine timing for --residual-fusion auto ----------------------------------------------------------------------


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
    """
    _require_tensorrt()
    import tensorrt as trt

    drv = _driver()
    if plugin == "python":
        register_python_plugin()
    _check(drv.cuInit(0))
    ctx = _check(drv.cuDevicePrimaryCtxRetain(_check(drv.cuDeviceGet(0))))
    _check(drv.cuCtxSetCurrent(ctx))
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    stream = _check(drv.cuStreamCreate(0))
    start, end = _check(drv.cuEventCreate(0)), _check(drv.cuEventCreate(0))
    results = []
    for path in engine_paths:
        engine = runtime.deserialize_cuda_engine(Path(path).read_bytes())
        if engine is None:
            raise UserError(f"{path}: TensorRT could not deserialize the engine")
        context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        shapes = {}
        for name in names:
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                opt = tuple(dims_list(engine.get_tensor_profile_shape(name, 0)[1]))
                context.set_input_shape(name, opt)
                shapes[name] = opt
        buffers = []
        for name in names:
            itemsize = numpy_dtype(engine.get_tensor_dtype(name)).itemsize
            size = int(np.prod(dims_list(context.get_tensor_shape(name)), dtype=np.int64)) * itemsize
            ptr = _check(drv.cuMemAlloc(max(size, 1)))
            buffers.append(ptr)
            context.set_tensor_address(name, int(ptr))
        times: list[float] = []
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < warmup_s:
            context.execute_async_v3(int(stream))
            _check(drv.cuStreamSynchronize(stream))
        t0 = time.perf_counter()
        while len(times) < min_iterations or time.perf_counter() - t0 < min_seconds:
            _check(drv.cuEventRecord(start, stream))
            context.execute_async_v3(int(stream))
            _check(drv.cuEventRecord(end, stream))
            _check(drv.cuEventSynchronize(end))
            times.append(float(_check(drv.cuEventElapsedTime(start, end))))
        for ptr in buffers:
            _check(drv.cuMemFree(ptr))
        del context, engine
        results.append(
            EngineTiming(str(path), statistics.median(times), statistics.fmean(times), min(times), len(times), shapes)
        )
    _check(drv.cuEventDestroy(start))
    _check(drv.cuEventDestroy(end))
    _check(drv.cuStreamDestroy(stream))
    return results


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
