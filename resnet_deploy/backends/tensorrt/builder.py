"""ONNX -> TensorRT engine: strongly typed network, one dynamic-batch profile, persisted timing cache, sidecar.

Precision is whatever the ONNX says (strong typing): FP16 is an FP16 graph, INT8 is a Q/DQ graph. The builder
never sets ``BuilderFlag.FP16/INT8`` (removed in TensorRT 11). Runs wherever TensorRT or TensorRT-RTX imports;
TensorRT-RTX builds without a GPU, which is how CI exercises this whole module.

Timing cache file format (our own, so corruption and foreign caches are detected before TensorRT sees them):
``RDTC1\\n`` + one JSON line ``{"flavour", "version", "sha256", "size"}`` + the bytes of
``ITimingCache.serialize()``. A missing cache starts empty. A file that is not ours (no ``RDTC1`` magic, e.g. a
calibration cache given by mistake) is **left untouched** and the build goes on without a cache; one of ours that is
corrupt or from another TensorRT is replaced after a successful build. Either way the build report says so in one
line. A timing cache only speeds builds up, it never changes what is built correctly. A ``--timing-cache`` that is
not a regular file (a FIFO, a device) is refused before anything is read.

Plugins: a graph with ``ResidualAddRelu`` nodes gets its plugin registered **before** parsing (onnx-tensorrt looks
creators up while it parses; without one it inlines the node's local function, seen on TensorRT-RTX), in the node
form its TensorRT version imports as a plugin (:func:`~resnet_deploy.passes.residual_fusion.for_tensorrt`). The
sidecar records what the parsed network contains (plugin layers counted from it), not what was asked for.

Outputs: the engine is renamed into place first and its sidecar last, so a kill between the two leaves an engine
whose sidecar is *stale* (refused as such by :func:`.sidecar.verify_engine_file`); temporary files left by killed
runs are removed by the next build. Ctrl-C while TensorRT parses or builds stops the build (its progress monitor
asks TensorRT to cancel) and nothing is written.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import signal
import stat
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import onnx

from ..._io import atomic_path, atomic_write_bytes, check_writable, clean_stale_temps
from ..._version import __version__
from ...errors import UserError
from ...info import ModelInfo, to_sidecar
from ...onnx_io import check_model, check_no_external_data, graph_precision, info_from_onnx, load_onnx
from ...passes.residual_fusion import PLUGIN_NAME, count_fused, for_tensorrt
from . import compat, engine_inspector, sidecar
from .log import Capture, capture
from .log import logger as process_logger

if TYPE_CHECKING:
    import tensorrt as trt

TIMING_CACHE_MAGIC = b"RDTC1\n"
MAX_TIMING_CACHE_HEADER = 4096  # bytes of the JSON header line
MAX_TIMING_CACHE_BYTES = 1 << 30
PLUGIN_LAYER_TYPES = ("PLUGIN", "PLUGIN_V2", "PLUGIN_V3")
DEFAULT_MAX_BATCH = 32
HARDWARE_COMPAT = {"none": "NONE", "ampere_plus": "AMPERE_PLUS", "same_compute_capability": "SAME_COMPUTE_CAPABILITY"}


@dataclass
class EngineBuildOptions:
    """Builder settings (the CLI's ``--min/--opt/--max-batch``, ``--opt-level``, ``--workspace``, ...)."""

    min_batch: int = 1
    opt_batch: int | None = None  # None: max_batch (kernels tuned for full batches)
    # None: DEFAULT_MAX_BATCH, or the min/opt batch asked for when larger (`--opt-batch 64` alone moves max along)
    max_batch: int | None = None
    opt_level: int = 3  # builder_optimization_level, 0..5
    workspace_mb: int | None = None  # None: TensorRT's default (device memory)
    version_compatible: bool = False
    hardware_compat: str = "none"  # none | ampere_plus | same_compute_capability
    timing_cache: str | Path | None = None  # file to load (if present and valid) and save after the build
    profiling_verbosity: str = "detailed"  # detailed | layer_names_only | none
    plugin_impl: str | None = None  # plugin graphs: "aot" | "python"; None: AOT where TensorRT has it (10.9+)
    #: ((min H, W), (opt H, W), (max H, W)) for a graph with dynamic H and W axes (``--min/--opt/--max-shapes``);
    #: None for the usual fixed-size graph
    hw_profile: tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None = None

    def resolved_max_batch(self) -> int:
        if self.max_batch is not None:
            return self.max_batch
        return max(DEFAULT_MAX_BATCH, self.min_batch, self.opt_batch or 0)

    def resolved_opt_batch(self) -> int:
        return self.resolved_max_batch() if self.opt_batch is None else self.opt_batch

    def describe_batches(self) -> str:
        """The profile as the user set it: given values by flag, the rest marked as defaults (never presented as
        if they had been asked for)."""
        mx = self.resolved_max_batch()
        parts = [
            f"--min-batch {self.min_batch}" if self.min_batch != 1 else "min 1 (default)",
            f"--opt-batch {self.opt_batch}" if self.opt_batch is not None else f"opt = max {mx} (default)",
            f"--max-batch {self.max_batch}" if self.max_batch is not None else f"max {mx} (default)",
        ]
        return ", ".join(parts)

    def validate(self) -> None:
        opt, mx = self.resolved_opt_batch(), self.resolved_max_batch()
        if not (1 <= self.min_batch <= opt <= mx):
            raise UserError(f"batch profile must satisfy 1 <= min <= opt <= max; got {self.describe_batches()}")
        if mx > 65536:
            raise UserError(f"max batch {mx} is unreasonably large")
        if not 0 <= self.opt_level <= 5:
            raise UserError(f"optimization level must be 0..5, got {self.opt_level}")
        if self.workspace_mb is not None and self.workspace_mb <= 0:
            raise UserError(f"workspace must be a positive number of MiB, got {self.workspace_mb}")
        if self.hardware_compat not in HARDWARE_COMPAT:
            raise UserError(f"hardware compatibility must be one of {', '.join(HARDWARE_COMPAT)}")
        if self.profiling_verbosity not in ("detailed", "layer_names_only", "none"):
            raise UserError("profiling verbosity must be detailed, layer_names_only or none")
        if self.plugin_impl not in (None, "aot", "python"):
            raise UserError(f"unknown plugin implementation '{self.plugin_impl}' (choose aot or python)")
        if self.hw_profile is not None:
            (h0, w0), (h1, w1), (h2, w2) = self.hw_profile
            if not (1 <= h0 <= h1 <= h2 <= 65536 and 1 <= w0 <= w1 <= w2 <= 65536):
                raise UserError(f"H x W profile must satisfy 1 <= min <= opt <= max; got {self.hw_profile}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["opt_batch"] = self.resolved_opt_batch()
        d["max_batch"] = self.resolved_max_batch()
        d["timing_cache"] = str(self.timing_cache) if self.timing_cache is not None else None
        # the sidecar's input section holds the full min/opt/max shapes the engine has (build_options: scalars)
        del d["hw_profile"]
        return d


@dataclass
class EngineBuildReport:
    """What the build produced, as TensorRT reported it."""

    engine_path: Path
    sidecar_path: Path
    engine_bytes: int
    build_seconds: float
    tensorrt: str  # e.g. "TensorRT-RTX 1.7.1.116"
    precision: str
    network_layers: int  # INetworkDefinition.num_layers after parsing
    engine_layers: int | None  # ICudaEngine.num_layers, when the engine could be deserialized here
    inputs: list[dict[str, Any]]  # name, dtype, shape (-1 = dynamic)
    outputs: list[dict[str, Any]]
    profile: dict[str, list[int]]  # min/opt/max shapes read back from the optimization profile
    layer_source: str  # "engine_inspector" | "network_definition"
    timing_cache: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    plugin_layers: int = 0  # plugin layers in the parsed network (ResidualAddRelu nodes that became the plugin)
    plugin_impl: str | None = None  # "aot" | "python" when the plugin was registered for this build
    onnx_model: onnx.ModelProto | None = field(default=None, repr=False, compare=False)  # what TensorRT parsed

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "onnx_model"}
        d["engine_path"], d["sidecar_path"] = str(self.engine_path), str(self.sidecar_path)
        return d

    def __str__(self) -> str:
        p = self.profile
        return (
            f"{self.engine_path} ({self.engine_bytes / 1e6:.1f} MB, {self.precision}, {self.tensorrt}) built in "
            f"{self.build_seconds:.1f} s: {self.network_layers} network layers"
            + (f", {self.engine_layers} engine layers" if self.engine_layers is not None else "")
            + f"; batch profile {p['min'][0]}/{p['opt'][0]}/{p['max'][0]}"
            + (
                f", H x W {p['min'][2]}x{p['min'][3]}/{p['opt'][2]}x{p['opt'][3]}/{p['max'][2]}x{p['max'][3]}"
                if p["min"][2:] != p["max"][2:]
                else ""
            )
        )


# ----------------------------------------------------------------------------------------- logging, Ctrl-C


class _Interrupt:
    """Ctrl-C while TensorRT works: remember it instead of raising inside TensorRT's callbacks (where pybind11
    swallows exceptions, so the build would go on and write its engine); TensorRT is asked to cancel through
    :class:`_CancelMonitor`, and :meth:`check` raises ``KeyboardInterrupt`` once control is back in Python.
    Only the main thread can install a signal handler; elsewhere this is a no-op."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True

    def __enter__(self) -> _Interrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt


def _cancel_monitor(interrupt: _Interrupt) -> Any:
    """A ``trt.IProgressMonitor`` whose ``step_complete`` returns False (cancel the build) after Ctrl-C; None where
    this TensorRT has no progress monitor (10.0+ and TensorRT-RTX have one)."""
    base: Any = getattr(compat.module(), "IProgressMonitor", None)
    if base is None:
        return None

    class _CancelMonitor(base):  # type: ignore[misc]
        def __init__(self) -> None:
            base.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            pass

        def step_complete(self, phase_name: str, step: int) -> bool:
            return not interrupt.requested

        def phase_finish(self, phase_name: str) -> None:
            pass

    return _CancelMonitor()


@contextlib.contextmanager
def _quiet_deprecations() -> Iterator[None]:
    # TensorRT-RTX marks timing-cache calls deprecated (they are no-ops there); the code is right for TensorRT.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


# -------------------------------------------------------------------------------------------- timing cache


@dataclass
class TimingCacheRead:
    """What was found at a ``--timing-cache`` path, and what the build does with it."""

    payload: bytes | None  # the cache bytes to hand to TensorRT, or None (start empty)
    status: str  # created | loaded | replaced-corrupt | replaced-other-version | foreign
    message: str | None = None  # one line for the build report, when the file is not used

    @property
    def writable(self) -> bool:
        """A foreign file is never overwritten."""
        return self.status != "foreign"


def _kind(mode: int) -> str:
    return "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a special file"


def _read_regular_file(path: Path, what: str, limit: int) -> bytes | None:
    """The bytes of ``path`` (None if it does not exist), refusing anything but a regular file *before* opening it
    for reading: a FIFO would block the build forever, a device could be read without end. Opened non-blocking and
    checked again on the open descriptor, so a file swapped for a FIFO in between is refused too."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UserError(f"{what} {path} cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{what} {path} is {_kind(st.st_mode)}, not a regular file: give the path of a file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise UserError(f"{what} {path} cannot be read ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise UserError(f"{what} {path} is not a regular file: give the path of a file")
        if st.st_size > limit:
            raise UserError(f"{what} {path} is too large ({st.st_size} bytes)")
        return f.read(limit + 1)


def check_timing_cache_path(path: str | Path) -> Path:
    """One-line refusal of a ``--timing-cache`` that is a folder, FIFO or device (before any work starts)."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return check_writable(path)
    except OSError:
        return path  # reported with its reason when it is read
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"--timing-cache {path} is {_kind(st.st_mode)}, not a regular file: give the path of a file")
    return path


def read_timing_cache(path: Path, running: compat.TrtInfo) -> TimingCacheRead:
    """Read ``path`` as our timing cache format; never raises on its contents (deep JSON, huge numbers, garbage):
    a corrupt or foreign file gives a status and one line instead. A file that is not a regular file is refused."""
    raw = _read_regular_file(path, "timing cache", MAX_TIMING_CACHE_BYTES)
    if raw is None:
        return TimingCacheRead(None, "created")
    if not raw.startswith(TIMING_CACHE_MAGIC):
        return TimingCacheRead(
            None,
            "foreign",
            f"timing cache {path} is not a resnet-deploy timing cache: left it untouched and built without one",
        )
    header_end = raw.find(b"\n", len(TIMING_CACHE_MAGIC), len(TIMING_CACHE_MAGIC) + MAX_TIMING_CACHE_HEADER)
    try:
        if header_end < 0:
            raise ValueError("no header line")
        header = json.loads(raw[len(TIMING_CACHE_MAGIC) : header_end].decode("utf-8"))
        payload = raw[header_end + 1 :]
        if not isinstance(header, dict) or header.get("size") != len(payload):
            raise ValueError("truncated")
        if header.get("sha256") != sidecar.sha256_bytes(payload):
            raise ValueError("checksum mismatch")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # JSONDecodeError, int digit limit, nesting
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).splitlines()[0][:120]
        return TimingCacheRead(
            None, "replaced-corrupt", f"timing cache {path} is corrupt ({reason}): built without it, wrote a fresh one"
        )
    if header.get("flavour") != running.flavour or header.get("version") != running.version:
        return TimingCacheRead(
            None,
            "replaced-other-version",
            f"timing cache {path} is from {str(header.get('flavour'))[:40]} {str(header.get('version'))[:40]}, not "
            f"{running.describe()}: built without it, wrote a fresh one",
        )
    return TimingCacheRead(payload, "loaded")


def write_timing_cache(path: Path, payload: bytes, running: compat.TrtInfo) -> None:
    """Save a timing cache atomically (a crash mid-write leaves the previous file intact)."""
    header: dict[str, Any] = {"flavour": running.flavour, "version": running.version}
    header.update(sha256=sidecar.sha256_bytes(payload), size=len(payload))
    atomic_write_bytes(path, TIMING_CACHE_MAGIC + json.dumps(header).encode() + b"\n" + payload)


# ------------------------------------------------------------------------------------------------- helpers


def _as_model(onnx_model: onnx.ModelProto | bytes | str | Path) -> tuple[onnx.ModelProto, bytes]:
    """(validated ModelProto, the exact bytes TensorRT will parse)."""
    if isinstance(onnx_model, str | Path):
        model = load_onnx(onnx_model)
        return model, model.SerializeToString()
    if isinstance(onnx_model, bytes | bytearray | memoryview):
        data = bytes(onnx_model)
        try:
            model = onnx.load_from_string(data)
        except Exception as exc:  # protobuf DecodeError and friends
            raise UserError(f"not an ONNX model ({type(exc).__name__})") from None
    elif isinstance(onnx_model, onnx.ModelProto):
        model = onnx_model
        data = model.SerializeToString()
    else:
        raise UserError(f"build_engine takes an ONNX ModelProto, bytes or a path, not {type(onnx_model).__name__}")
    if not model.graph.node:
        raise UserError("the ONNX model has no graph")
    check_no_external_data(model)
    check_model(model)
    return model, data


def _model_info(model: onnx.ModelProto, info: ModelInfo | None) -> ModelInfo | None:
    if info is not None:
        return info
    return info_from_onnx(model)


def _parse_error_message(parser: trt.OnnxParser) -> str:
    parts: list[str] = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        node_name = str(err.node_name()) if hasattr(err, "node_name") else ""
        node_op = str(err.node_operator()) if hasattr(err, "node_operator") else ""
        where = f"node '{node_name or err.node()}' ({node_op or 'unknown op'})" if err.node() >= 0 else "the graph"
        desc = str(err.desc()).strip().splitlines()[0] if str(err.desc()).strip() else str(err.code())
        parts.append(f"{where}: {getattr(err.code(), 'name', err.code())}: {desc}")
    if not parts:
        return "TensorRT's ONNX parser failed without saying why"
    more = f" (+{len(parts) - 1} more)" if len(parts) > 1 else ""
    return f"TensorRT cannot parse the ONNX model at {parts[0]}{more}"


def _io_tensors(network: trt.INetworkDefinition) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    def desc(t: trt.ITensor) -> dict[str, Any]:
        return {"name": str(t.name), "dtype": engine_inspector.dtype_name(t.dtype), "shape": compat.dims_list(t.shape)}

    ins = [desc(network.get_input(i)) for i in range(network.num_inputs)]
    outs = [desc(network.get_output(i)) for i in range(network.num_outputs)]
    return ins, outs


def _plugin_layer_count(layers: list[dict[str, Any]]) -> int:
    return sum(1 for layer in layers if layer["type"] in PLUGIN_LAYER_TYPES)


def _write_pair(out_path: Path, side_path: Path, engine_data: bytes, meta: dict[str, Any]) -> None:
    """Both temporary files are written first; then the engine is renamed into place, the sidecar last (the
    inner ``atomic_path`` exits first). A kill between the two renames leaves the new engine beside its old,
    now stale sidecar, which loading refuses as stale; never a sidecar that vouches for an engine it did not
    describe."""
    text = json.dumps(meta, indent=2) + "\n"
    with atomic_path(side_path) as tmp_side, atomic_path(out_path) as tmp_engine:
        tmp_engine.write_bytes(engine_data)
        tmp_side.write_text(text, encoding="utf-8")  # after the engine: a complete pair's sidecar is never older


# ---------------------------------------------------------------------------------------------------- build


def build_engine(
    onnx_model: onnx.ModelProto | bytes | str | Path,
    out_path: str | Path,
    options: EngineBuildOptions | None = None,
    info: ModelInfo | None = None,
    extra: dict[str, str | int | float | bool | None] | None = None,
    calibration: dict[str, Any] | None = None,
) -> EngineBuildReport:
    """Build a TensorRT engine from our final ONNX and write ``out_path`` plus ``out_path + '.json'``.

    ``info`` defaults to the ModelInfo stored in the ONNX metadata. ``extra`` is free-form scalar data recorded
    in the sidecar (e.g. which passes ran); its ``residual_fusion`` is replaced by what the parsed network really
    contains. ``calibration`` (INT8: ``{"method", "cache_sha256"}``) says where the Q/DQ scales came from.
    Nothing is written unless the build succeeds; Ctrl-C during it raises ``KeyboardInterrupt`` and writes
    nothing.
    """
    options = options or EngineBuildOptions()
    options.validate()
    out_path = check_writable(out_path)
    side_path = sidecar.sidecar_path(out_path)
    check_writable(side_path)
    cache_path = check_timing_cache_path(options.timing_cache) if options.timing_cache is not None else None
    running = compat.info()
    trt_mod = compat.trt
    model, onnx_bytes = _as_model(onnx_model)
    model_info = _model_info(model, info)
    precision = graph_precision(model)
    warns: list[str] = []
    removed = [*clean_stale_temps(out_path), *clean_stale_temps(side_path)]
    if cache_path is not None:
        removed += clean_stale_temps(cache_path)
    if removed:
        warns.append(f"removed {len(removed)} temporary file(s) left by an interrupted earlier run")

    plugin_nodes = count_fused(model)
    impl: str | None = None
    if plugin_nodes or running.flavour == "tensorrt_rtx":
        from . import plugin

        if running.flavour == "tensorrt_rtx":
            # Its parser aborts the process on a node whose creator is registered (no add_plugin_v3): refuse first.
            plugin.refuse_tensorrt_rtx_plugins(model.graph.node, trt_mod.get_plugin_registry())
        else:
            # Registered before parsing: onnx-tensorrt looks creators up while parsing (ModelImporter.cpp).
            impl = plugin.plugin_impl(options.plugin_impl)
            plugin.register_plugin(impl)
            model = for_tensorrt(model, running.version, aot=impl == "aot")
            onnx_bytes = model.SerializeToString()

    logger = process_logger()
    with capture() as log, _Interrupt() as interrupt:
        built = _build(trt_mod, logger, log, interrupt, onnx_bytes, options, running, cache_path, warns)
        if impl is not None and built.plugin_layers < plugin_nodes:
            raise UserError(
                f"TensorRT {running.version}'s ONNX parser imported {built.plugin_layers} of {plugin_nodes} "
                f"{PLUGIN_NAME} node(s) as the {impl} plugin (it inlined the rest): nothing was written"
            )
        engine_data = bytes(memoryview(built.serialized))
        plugin_layers, inputs, outputs = built.plugin_layers, built.inputs, built.outputs
        cache, profile_shapes = built.cache, built.profile_shapes

        layer_source, layers, engine_layers = "network_definition", built.network_layers, None
        gpu_info = compat.gpu()
        usable, _ = compat.gpu_runtime_status()
        if usable:
            # Only where a GPU runtime exists: never run on the development/CI machines (no GPU).
            from .runtime import deserialize_engine_bytes

            _runtime, engine = deserialize_engine_bytes(
                engine_data, logger, version_compatible=options.version_compatible
            )
            engine_layers = int(engine.num_layers)
            layers, layer_source = engine_inspector.layers_from_engine(engine), "engine_inspector"
        interrupt.check()

        recorded: dict[str, str | int | float | bool | None] = dict(extra or {})
        asked = recorded.get("residual_fusion")
        recorded["residual_fusion"] = "plugin" if plugin_layers else "native"
        recorded["plugin_layers"] = plugin_layers
        if impl is not None:
            recorded["plugin_impl"] = impl
        if asked == "plugin" and not plugin_layers:
            recorded["residual_fusion_reason"] = (
                f"the ONNX parser expanded the {plugin_nodes} {PLUGIN_NAME} node(s) into their ONNX function "
                f"({running.describe()} has no plugin layers)"
            )
        if plugin_nodes and not plugin_layers:
            warns.append(str(recorded.get("residual_fusion_reason") or "the plugin nodes were inlined"))
        meta = _sidecar_dict(
            engine_data=engine_data,
            engine_name=out_path.name,
            onnx_bytes=onnx_bytes,
            info=model_info,
            precision=precision,
            running=running,
            gpu_info=gpu_info,
            inputs=inputs,
            outputs=outputs,
            profile_shapes=profile_shapes,
            # the batch profile the engine has (a static-batch ONNX pins it), never the one asked for
            options=replace(
                options,
                min_batch=profile_shapes["min"][0],
                opt_batch=profile_shapes["opt"][0],
                max_batch=profile_shapes["max"][0],
            ),
            layers=layers,
            layer_source=layer_source,
            extra=recorded,
            calibration=calibration,
        )
        sidecar.validate(meta, str(side_path))
        # A Ctrl-C from here on is held until the pair and the cache are written: they appear together.
        _write_pair(out_path, side_path, engine_data, meta)
        if cache_path is not None and built.timing_cache is not None and cache.writable:
            with _quiet_deprecations():
                cache_bytes = bytes(memoryview(built.timing_cache.serialize()))
            write_timing_cache(cache_path, cache_bytes, running)
            cache.info["saved_bytes"] = len(cache_bytes)
    interrupt.check()

    for w in log.warnings():
        if "timing cache" not in w.lower() and w not in warns:
            warns.append(w)
    return EngineBuildReport(
        engine_path=out_path,
        sidecar_path=side_path,
        engine_bytes=len(engine_data),
        build_seconds=cache.seconds,
        tensorrt=running.describe(),
        precision=precision,
        network_layers=built.layer_count,
        engine_layers=engine_layers,
        inputs=inputs,
        outputs=outputs,
        profile=profile_shapes,
        layer_source=layer_source,
        timing_cache=cache.info,
        warnings=warns,
        plugin_layers=plugin_layers,
        plugin_impl=impl,
        onnx_model=model,
    )


@dataclass
class _CacheUse:
    """How the timing cache was used in one build (and the build time, measured next to it)."""

    info: dict[str, Any]
    writable: bool
    seconds: float = 0.0


@dataclass
class _Built:
    """What :func:`_build` hands back to :func:`build_engine`."""

    serialized: Any  # trt.IHostMemory
    network_layers: list[dict[str, Any]]
    layer_count: int
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    profile_shapes: dict[str, list[int]]
    cache: _CacheUse
    timing_cache: Any  # trt.ITimingCache | None

    @property
    def plugin_layers(self) -> int:
        return _plugin_layer_count(self.network_layers)


def _build(
    trt_mod: Any,
    logger: Any,
    log: Capture,
    interrupt: _Interrupt,
    onnx_bytes: bytes,
    options: EngineBuildOptions,
    running: compat.TrtInfo,
    cache_path: Path | None,
    warns: list[str],
) -> _Built:
    """Parse, configure and build. Raises UserError (one line) on every failure TensorRT reports,
    ``KeyboardInterrupt`` after a Ctrl-C."""
    builder = trt_mod.Builder(logger)
    network = builder.create_network(compat.strongly_typed_flags())
    parser = trt_mod.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        interrupt.check()
        raise UserError(_parse_error_message(parser))
    interrupt.check()
    if network.num_inputs != 1:
        raise UserError(f"expected a model with one input, TensorRT found {network.num_inputs}")
    if network.num_outputs < 1:
        raise UserError("TensorRT found no outputs in the ONNX model")
    network_layers = engine_inspector.layers_from_network(network)
    input_tensor = network.get_input(0)
    in_shape = compat.dims_list(input_tensor.shape)
    if len(in_shape) != 4 or in_shape[1] <= 0:
        raise UserError(f"expected an NCHW input with a fixed C; got shape {in_shape}")
    dynamic_hw = any(d <= 0 for d in in_shape[2:])
    if dynamic_hw and options.hw_profile is None:
        raise UserError(
            f"the ONNX input {input_tensor.name} {in_shape} has dynamic H and W: give their range with "
            f"--min/--opt/--max-shapes {input_tensor.name}:NxCxHxW (or --shapes for one size)"
        )
    fixed_hw = tuple(in_shape[2:])
    if not dynamic_hw and options.hw_profile is not None and any(hw != fixed_hw for hw in options.hw_profile):
        raise UserError(f"the ONNX input {input_tensor.name} has a fixed H x W {in_shape[2:]}; the H x W profile "
                        f"{options.hw_profile} asks for others")  # fmt: skip
    min_b, opt_b, max_b = options.min_batch, options.resolved_opt_batch(), options.resolved_max_batch()
    if in_shape[0] > 0:
        if (min_b, opt_b, max_b) != (in_shape[0],) * 3:
            warns.append(f"the ONNX input has a fixed batch of {in_shape[0]}; the profile is pinned to it")
        min_b = opt_b = max_b = in_shape[0]
    c = in_shape[1]
    # One full NCHW shape per profile point, as trtexec sets them (NVIDIA/TensorRT samples/common/sampleEngines.cpp:
    # IOptimizationProfile::setDimensions for kMIN, kOPT, kMAX of each dynamic input; Python: set_shape(name, min,
    # opt, max)). TensorRT requires min <= opt <= max per axis and the network's value on every fixed axis.
    hw = options.hw_profile if dynamic_hw and options.hw_profile is not None else (tuple(in_shape[2:]),) * 3
    points = [[b, c, *size] for b, size in zip((min_b, opt_b, max_b), hw, strict=True)]

    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    dims = trt_mod.Dims
    profile.set_shape(input_tensor.name, *(dims(p) for p in points))
    if config.add_optimization_profile(profile) < 0:
        raise UserError("TensorRT rejected the optimization profile")
    config.builder_optimization_level = options.opt_level
    if options.workspace_mb is not None:
        config.set_memory_pool_limit(trt_mod.MemoryPoolType.WORKSPACE, options.workspace_mb * 1024 * 1024)
    verbosity = compat.member("ProfilingVerbosity", options.profiling_verbosity.upper())
    if verbosity is not None:
        config.profiling_verbosity = verbosity
    if options.version_compatible:
        flag = compat.member("BuilderFlag", "VERSION_COMPATIBLE")
        if flag is None:
            raise UserError(f"{running.describe()} cannot build version-compatible engines")
        config.set_flag(flag)
        exclude = compat.member("BuilderFlag", "EXCLUDE_LEAN_RUNTIME")
        if running.flavour == "tensorrt_rtx" and exclude is not None:
            # Seen: TensorRT-RTX fails to embed a lean runtime (it ships no libnvinfer_lean); full TensorRT embeds it.
            config.set_flag(exclude)
            warns.append("TensorRT-RTX has no lean runtime to embed: the version-compatible engine excludes it")
    if options.hardware_compat != "none":
        level = compat.member("HardwareCompatibilityLevel", HARDWARE_COMPAT[options.hardware_compat])
        if level is None or not hasattr(config, "hardware_compatibility_level"):
            raise UserError(f"{running.describe()} has no hardware compatibility level '{options.hardware_compat}'")
        if running.flavour == "tensorrt_rtx":
            warns.append("TensorRT-RTX ignores hardware compatibility levels (its engines target RTX GPUs)")
        config.hardware_compatibility_level = level
    monitor = _cancel_monitor(interrupt)
    if monitor is not None and hasattr(config, "progress_monitor"):
        config.progress_monitor = monitor  # kept alive by `monitor` until the build returns

    cache = _CacheUse({"path": str(cache_path) if cache_path else None, "status": "disabled"}, writable=False)
    timing_cache = None
    if cache_path is not None:
        found = read_timing_cache(cache_path, running)
        cache = _CacheUse({"path": str(cache_path), "status": found.status}, writable=found.writable)
        if found.message:
            warns.append(found.message)
        mark = log.mark()
        with _quiet_deprecations():
            timing_cache = config.create_timing_cache(found.payload or b"")
            accepted = timing_cache is not None and config.set_timing_cache(timing_cache, False)
        if not accepted:
            warns.append(f"TensorRT refused the timing cache {cache_path}: built without it, the file is unchanged")
            cache.writable, timing_cache = False, None
        # TensorRT says so when it cannot use the bytes (seen with TensorRT-RTX without a GPU: every cache).
        rejected = found.payload is not None and any("timing cache" in m.lower() for m in log.since(mark))
        cache.info["rejected_by_tensorrt"] = rejected or not accepted
        if running.flavour == "tensorrt_rtx":
            cache.info["note"] = "TensorRT-RTX treats timing caches as no-ops; the file is kept for TensorRT"

    inputs, outputs = _io_tensors(network)
    read_back = profile.get_shape(input_tensor.name)
    profile_shapes = {
        "min": compat.dims_list(read_back[0]),
        "opt": compat.dims_list(read_back[1]),
        "max": compat.dims_list(read_back[2]),
    }
    interrupt.check()
    started = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    cache.seconds = time.perf_counter() - started
    interrupt.check()
    if serialized is None:
        errs = log.errors()
        detail = errs[-1] if errs else "no reason given"
        raise UserError(f"TensorRT could not build the engine: {detail}")
    return _Built(
        serialized, network_layers, int(network.num_layers), inputs, outputs, profile_shapes, cache, timing_cache
    )


def _sidecar_dict(
    *,
    engine_data: bytes,
    engine_name: str,
    onnx_bytes: bytes,
    info: ModelInfo | None,
    precision: str,
    running: compat.TrtInfo,
    gpu_info: compat.GpuInfo | None,
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    profile_shapes: dict[str, list[int]],
    options: EngineBuildOptions,
    layers: list[dict[str, Any]],
    layer_source: str,
    extra: dict[str, Any] | None,
    calibration: dict[str, Any] | None,
) -> dict[str, Any]:
    inp = inputs[0]
    sections = to_sidecar(info, profile_shapes["opt"])  # the opt shape: a dynamic H, W reads -1 in inp["shape"]
    return {
        "format": sidecar.SIDECAR_FORMAT,
        "resnet_deploy_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "engine": {"file": engine_name, "sha256": sidecar.sha256_bytes(engine_data), "size": len(engine_data)},
        "source_onnx": {"sha256": sidecar.sha256_bytes(onnx_bytes), "size": len(onnx_bytes)},
        "model": sections["model"],
        "precision": precision,
        "tensorrt": {"flavour": running.flavour, "version": running.version},
        "gpu": {"name": gpu_info.name, "compute_capability": gpu_info.cc_str} if gpu_info else None,
        "input": {
            "name": inp["name"],
            "dtype": inp["dtype"],
            "shape": inp["shape"],
            "min_shape": profile_shapes["min"],
            "opt_shape": profile_shapes["opt"],
            "max_shape": profile_shapes["max"],
        },
        "outputs": outputs,
        "preprocessing": sections["preprocessing"],
        "calibration": calibration,
        "build_options": options.to_dict(),
        "layers": {"source": layer_source, "count": len(layers), "items": layers},
        "extra": dict(extra or {}),
    }
