"""Registering the fused residual add + ReLU plugin with TensorRT (full TensorRT only; never TensorRT-RTX).

- :func:`register_python_plugin`: a Python ``IPluginV3`` (TensorRT 10.0+, e.g. JetPack 6's 10.3) that launches
  our PTX through the CUDA driver API (:mod:`.cuda`). Engines built with it need this Python code registered to
  deserialize. Follows NVIDIA's ``samples/python/python_plugin``.
- :func:`register_aot_plugin`: a ``tensorrt.plugin`` plugin with only an ahead-of-time implementation
  (TensorRT 10.9+): the PTX is embedded in the engine, which then runs without Python (trtexec, C++). Follows
  NVIDIA's ``samples/python/quickly_deployable_plugins``.

Both use the name/namespace/version that :func:`resnet_deploy.passes.residual_fusion.fuse_residual_add_relu`
writes into the ONNX; register one of them per process, **before** the ONNX parser runs (onnx-tensorrt looks the
creator up while it parses; without one it inlines the node's local function). :func:`plugin_impl` picks which
(``--plugin-impl``: AOT where ``tensorrt.plugin`` has ``aot_impl``, i.e. TensorRT 10.9+, else Python). FP32 and
FP16 are offered (the fused graph's Add inputs are float even in Q/DQ INT8 graphs); the Python plugin also offers
INT8 I/O when the node's ``scale_a``, ``scale_b``, ``scale_y`` fields are set (all 0 means float I/O).

TensorRT-RTX has no ``add_plugin_v3``: its parser creates a registered plugin and then aborts the process
(``std::terminate``, seen), so nothing here registers with it and :func:`refuse_tensorrt_rtx_plugins` refuses a
graph it could abort on before parsing. ``tensorrt`` and ``cuda.bindings`` are imported lazily: importing this
module needs neither.
"""

# No `from __future__ import annotations`: tensorrt.plugin validates the decorated functions' annotations as
# real objects, not strings.

from collections.abc import Iterable
from typing import Any

import numpy as np

from ....errors import UserError
from ....kernels import BLOCK_SIZE, KERNEL_NAMES, VECTOR_ELEMS, KernelArtifacts, find_kernels
from ....passes.residual_fusion import PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION, SCALE_FIELDS
from .. import compat
from ..compat import dims_list
from .cuda import Kernels, current_compute_capability

PLUGIN_ID = f"{PLUGIN_NAMESPACE}::{PLUGIN_NAME}"
PLUGIN_IMPLS = ("aot", "python")
_registered: str | None = None  # "python" or "aot": one registration per process
_kernels: Kernels | None = None  # the Python plugin's PTX modules (unloaded by :func:`unload_kernels`)


def int8_scales(fields: dict[str, float]) -> tuple[float, float, float] | None:
    """The (scale_a, scale_b, scale_y) plugin fields if all three are present, set and valid, else None (float
    I/O): a missing field or all three 0 (what the fusion pass writes for float graphs) means no requantisation."""
    if not all(k in fields for k in SCALE_FIELDS):
        return None
    sa, sb, sy = (float(fields[k]) for k in SCALE_FIELDS)
    if sa == sb == sy == 0.0:
        return None
    if not all(np.isfinite(v) for v in (sa, sb, sy)) or sy <= 0:
        raise UserError(f"{PLUGIN_NAME}: INT8 scales must be finite and scale_y > 0, got {sa}, {sb}, {sy}")
    return sa, sb, sy


class SerializedFields:
    """A ``PluginFieldCollection`` together with the arrays its fields point into.

    ``trt.PluginField(name, data, type)`` stores a bare pointer into ``data`` (TensorRT ``python/src/infer/
    pyPlugin.cpp``, ``plugin_field_constructor``) and ``trt.PluginFieldCollection`` is a ``bind_vector`` of
    ``PluginField`` structs (``pyTensorRT.cpp``): it copies the structs, not the data. So the arrays, the fields and
    the collection must outlive every read TensorRT makes of them; this object keeps all three, and the plugin keeps
    this object (seen on TensorRT-RTX's bindings: scales read back from freed temporaries came back wrong).
    """

    def __init__(self, trt_module: Any, values: Iterable[tuple[str, float]]) -> None:
        self.arrays = [(name, np.array([value], dtype=np.float32)) for name, value in values]
        self.fields = [trt_module.PluginField(n, a, trt_module.PluginFieldType.FLOAT32) for n, a in self.arrays]
        self.collection = trt_module.PluginFieldCollection(self.fields)


def read_float_fields(fc: Any, names: Iterable[str]) -> dict[str, float]:
    """The float fields ``names`` of a ``PluginFieldCollection`` (empty or absent fields are left out)."""
    wanted = set(names)
    out: dict[str, float] = {}
    for f in fc:
        if f.name in wanted:
            data = np.asarray(f.data).reshape(-1)
            if data.size:
                out[str(f.name)] = float(data[0])
    return out


def aot_available() -> bool:
    """True where ``tensorrt.plugin`` has ahead-of-time implementations (``trtp.aot_impl``: TensorRT 10.9+)."""
    if not tensorrt_available() or not _has_module("tensorrt.plugin"):
        return False
    try:
        import tensorrt.plugin as trtp
    except Exception:
        return False
    return hasattr(trtp, "aot_impl")


def plugin_impl(requested: str | None = None) -> str:
    """Which registration a plugin build uses: ``requested`` ("aot" | "python"), or None: AOT where TensorRT has it
    (10.9+: engines then run without Python, in trtexec, C++ or Triton), else the Python plugin. One-line refusals
    where the plugin cannot be built at all."""
    found = compat.available()
    if found is not None and found.flavour == "tensorrt_rtx":
        raise UserError(
            f"{found.describe()} cannot build engines with the {PLUGIN_NAME} plugin (its networks have no "
            "add_plugin_v3 and its parser aborts the process on a plugin node): use --residual-fusion native"
        )
    if requested is not None and requested not in PLUGIN_IMPLS:
        raise UserError(f"unknown plugin implementation '{requested}' (choose {' or '.join(PLUGIN_IMPLS)})")
    _require_tensorrt()
    if requested == "aot" and not aot_available():
        import tensorrt as trt

        raise UserError(
            f"TensorRT {trt.__version__} has no tensorrt.plugin AOT implementations (10.9+): use --plugin-impl python"
        )
    if requested is None:
        return "aot" if aot_available() else "python"
    return requested


def register_plugin(impl: str, artifacts: KernelArtifacts | None = None) -> None:
    """Register the ``impl`` plugin ("aot" | "python") in this process (idempotent)."""
    if impl == "aot":
        register_aot_plugin(artifacts)
    elif impl == "python":
        register_python_plugin(artifacts)
    else:
        raise UserError(f"unknown plugin implementation '{impl}' (choose {' or '.join(PLUGIN_IMPLS)})")


def refuse_tensorrt_rtx_plugins(nodes: Iterable[Any], registry: Any) -> None:
    """On TensorRT-RTX, refuse (one line) a graph with a node that a registered plugin creator would import:
    its parser creates the plugin, then aborts the process (no ``add_plugin_v3``). Nodes without a creator are
    inlined from their local function or rejected by the parser, both safely."""
    for node in nodes:
        if node.domain in ("", "ai.onnx"):
            continue
        attrs = {a.name: a for a in node.attribute}
        version = attrs["plugin_version"].s.decode() if "plugin_version" in attrs else "1"
        namespace = attrs["plugin_namespace"].s.decode() if "plugin_namespace" in attrs else ""
        for ns in {namespace, node.domain, ""}:
            if registry.get_creator(node.op_type, version, ns) is not None:
                raise UserError(
                    f"TensorRT-RTX cannot build node '{node.name or node.op_type}': a plugin creator for "
                    f"{ns + '::' if ns else ''}{node.op_type} is registered, and TensorRT-RTX has no plugin layers "
                    "(its parser would abort the process); build with --residual-fusion native"
                )


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
    global _registered, _kernels
    if _already_registered("python"):
        return
    _require_tensorrt()
    import tensorrt as trt

    kernels = _kernels = Kernels(artifacts or find_kernels())
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
            self._serialized: SerializedFields | None = None  # alive as long as the plugin (see SerializedFields)

        def get_capability_interface(self, type: Any) -> Any:
            return self

        def get_output_data_types(self, input_types: list[Any]) -> list[Any]:
            return [input_types[0]]

        def get_output_shapes(self, inputs: list[Any], shape_inputs: list[Any], expr_builder: Any) -> list[Any]:
            return [trt.DimsExprs(inputs[0])]

        def get_fields_to_serialize(self) -> Any:
            scales = self.scales if self.scales is not None else (0.0, 0.0, 0.0)
            self._serialized = SerializedFields(trt, zip(SCALE_FIELDS, scales, strict=True))
            return self._serialized.collection

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
            twin._serialized = None  # each plugin owns the fields it hands out
            return twin

    class ResidualAddReluCreator(trt.IPluginCreatorV3One):
        def __init__(self) -> None:
            trt.IPluginCreatorV3One.__init__(self)
            self.name = PLUGIN_NAME
            self.plugin_namespace = PLUGIN_NAMESPACE
            self.plugin_version = PLUGIN_VERSION
            # The creator's field names (the ONNX node carries the same attributes); kept alive with their arrays.
            self._fields = SerializedFields(trt, ((k, 0.0) for k in SCALE_FIELDS))
            self.field_names = self._fields.collection

        def create_plugin(self, name: str, fc: Any, phase: Any) -> ResidualAddReluPlugin:
            return ResidualAddReluPlugin(int8_scales(read_float_fields(fc, SCALE_FIELDS)))

    # register_creator keeps the creator alive (py::keep_alive on the registry, pyPlugin.cpp).
    if not trt.get_plugin_registry().register_creator(ResidualAddReluCreator(), PLUGIN_NAMESPACE):
        raise UserError(f"TensorRT refused to register the {PLUGIN_ID} plugin creator")
    _registered = "python"


def unload_kernels() -> None:
    """Unload the Python plugin's PTX modules from the current CUDA context (before that context is released)."""
    if _kernels is not None:
        _kernels.unload_current()


# --- tensorrt.plugin AOT plugin (TensorRT 10.9+) -------------------------------------------------------------------


def register_aot_plugin(artifacts: KernelArtifacts | None = None, compute_capability: int | None = None) -> None:
    """Register ``resnet_deploy::ResidualAddRelu`` with ``tensorrt.plugin``: register + autotune + aot_impl only,
    so TensorRT embeds our PTX (for ``compute_capability``, default: this GPU's) in the engine."""
    global _registered
    if _already_registered("aot"):
        return
    _require_tensorrt()
    import tensorrt as trt

    if not aot_available():
        raise UserError(f"TensorRT {trt.__version__} has no tensorrt.plugin AOT implementations (10.9+)")
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
