"""Registering the fused residual add + ReLU plugin with TensorRT (full TensorRT only; never TensorRT-RTX).

- :func:`register_python_plugin`: a Python ``IPluginV3`` (TensorRT 10.0+, e.g. JetPack 6's 10.3) that launches
  our PTX through the CUDA driver API (:mod:`.cuda`). Engines built with it need this Python code registered to
  deserialize. Follows NVIDIA's ``samples/python/python_plugin``.
- :func:`register_aot_plugin`: a ``tensorrt.plugin`` plugin with only an ahead-of-time implementation
  (TensorRT 10.9+): the PTX is embedded in the engine, which then runs without Python (trtexec, C++). Follows
  NVIDIA's ``samples/python/quickly_deployable_plugins``.

Both use the name/namespace/version that :func:`resnet_deploy.passes.residual_fusion.fuse_residual_add_relu`
writes into the ONNX; register one of them per process. FP32 and FP16 are offered (the fused graph's Add inputs are
float even in Q/DQ INT8 graphs); the Python plugin also offers INT8 I/O when the node carries float attributes
``scale_a``, ``scale_b`` and ``scale_y``. ``tensorrt`` and ``cuda.bindings`` are imported lazily: importing this
module needs neither.
"""

# No `from __future__ import annotations`: tensorrt.plugin validates the decorated functions' annotations as
# real objects, not strings.

from typing import Any

import numpy as np

from ....errors import UserError
from ....kernels import BLOCK_SIZE, KERNEL_NAMES, VECTOR_ELEMS, KernelArtifacts, find_kernels
from ....passes.residual_fusion import PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION
from ..compat import dims_list
from .cuda import Kernels, current_compute_capability

PLUGIN_ID = f"{PLUGIN_NAMESPACE}::{PLUGIN_NAME}"
_registered: str | None = None  # "python" or "aot": one registration per process


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

    kernels = Kernels(artifacts or find_kernels())
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
