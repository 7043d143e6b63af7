"""ONNX -> TensorRT engine: strongly typed network, one dynamic-batch profile, persisted timing cache, sidecar.

Precision is whatever the ONNX says (strong typing): FP16 is an FP16 graph, INT8 is a Q/DQ graph. The builder
never sets ``BuilderFlag.FP16/INT8`` (removed in TensorRT 11). Runs wherever TensorRT or TensorRT-RTX imports;
TensorRT-RTX builds without a GPU, which is how CI exercises this whole module.

Timing cache file format (our own, so corruption and foreign caches are detected before TensorRT sees them):
``RDTC1\\n`` + one JSON line ``{"flavour", "version", "sha256", "size"}`` + the bytes of
``ITimingCache.serialize()``. A missing cache starts empty; a corrupt one, or one from another TensorRT, is
**ignored with a warning** (the build goes on with an empty cache and the file is replaced after a successful
build). Ignoring is the right call: a timing cache only speeds builds up, it never changes what is built
correctly.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx

from ..._io import atomic_path, atomic_write_bytes, check_writable
from ..._version import __version__
from ...errors import UserError
from ...info import ModelInfo, to_sidecar
from ...onnx_io import check_model, check_no_external_data, graph_precision, info_from_onnx, load_onnx
from . import compat, engine_inspector, sidecar

if TYPE_CHECKING:
    import tensorrt as trt

TIMING_CACHE_MAGIC = b"RDTC1\n"
HARDWARE_COMPAT = {"none": "NONE", "ampere_plus": "AMPERE_PLUS", "same_compute_capability": "SAME_COMPUTE_CAPABILITY"}


@dataclass
class EngineBuildOptions:
    """Builder settings (the CLI's ``--min/--opt/--max-batch``, ``--opt-level``, ``--workspace``, ...)."""

    min_batch: int = 1
    opt_batch: int | None = None  # None: max_batch (kernels tuned for full batches)
    max_batch: int = 32
    opt_level: int = 3  # builder_optimization_level, 0..5
    workspace_mb: int | None = None  # None: TensorRT's default (device memory)
    version_compatible: bool = False
    hardware_compat: str = "none"  # none | ampere_plus | same_compute_capability
    timing_cache: str | Path | None = None  # file to load (if present and valid) and save after the build
    profiling_verbosity: str = "detailed"  # detailed | layer_names_only | none

    def resolved_opt_batch(self) -> int:
        return self.max_batch if self.opt_batch is None else self.opt_batch

    def validate(self) -> None:
        opt = self.resolved_opt_batch()
        if not (1 <= self.min_batch <= opt <= self.max_batch):
            raise UserError(
                f"batch profile must satisfy 1 <= min <= opt <= max, got min {self.min_batch}, opt {opt}, "
                f"max {self.max_batch}"
            )
        if self.max_batch > 65536:
            raise UserError(f"max batch {self.max_batch} is unreasonably large")
        if not 0 <= self.opt_level <= 5:
            raise UserError(f"optimization level must be 0..5, got {self.opt_level}")
        if self.workspace_mb is not None and self.workspace_mb <= 0:
            raise UserError(f"workspace must be a positive number of MiB, got {self.workspace_mb}")
        if self.hardware_compat not in HARDWARE_COMPAT:
            raise UserError(f"hardware compatibility must be one of {', '.join(HARDWARE_COMPAT)}")
        if self.profiling_verbosity not in ("detailed", "layer_names_only", "none"):
            raise UserError("profiling verbosity must be detailed, layer_names_only or none")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["opt_batch"] = self.resolved_opt_batch()
        d["timing_cache"] = str(self.timing_cache) if self.timing_cache is not None else None
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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["engine_path"], d["sidecar_path"] = str(self.engine_path), str(self.sidecar_path)
        return d

    def __str__(self) -> str:
        p = self.profile
        return (
            f"{self.engine_path} ({self.engine_bytes / 1e6:.1f} MB, {self.precision}, {self.tensorrt}) built in "
            f"{self.build_seconds:.1f} s: {self.network_layers} network layers"
            + (f", {self.engine_layers} engine layers" if self.engine_layers is not None else "")
            + f"; batch profile {p['min'][0]}/{p['opt'][0]}/{p['max'][0]}"
        )


# ------------------------------------------------------------------------------------------------- logging


class _Log:
    """Collects TensorRT's log lines so failures can say what TensorRT said (and the CLI can show warnings)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []

    def record(self, severity: Any, msg: str) -> None:
        name = getattr(severity, "name", str(severity))
        self.messages.append((name, msg))

    def errors(self) -> list[str]:
        # TensorRT-RTX logs "Thread context has not been set" at INTERNAL_ERROR on every build; it is harmless.
        return [
            m
            for s, m in self.messages
            if s in ("ERROR", "INTERNAL_ERROR") and "Thread context has not been set" not in m
        ]

    def mark(self) -> int:
        return len(self.messages)

    def since(self, mark: int, severities: tuple[str, ...] = ("WARNING", "ERROR", "INTERNAL_ERROR")) -> list[str]:
        return [m for s, m in self.messages[mark:] if s in severities]


def make_logger(log: _Log) -> trt.ILogger:
    """A ``trt.ILogger`` feeding ``log`` (the class is made here because it subclasses the lazily loaded module)."""
    base: Any = compat.trt.ILogger

    class _Logger(base):  # type: ignore[misc]
        def __init__(self) -> None:
            base.__init__(self)

        def log(self, severity: Any, msg: str) -> None:
            log.record(severity, msg)

    logger: trt.ILogger = _Logger()
    return logger


@contextlib.contextmanager
def _quiet_deprecations() -> Iterator[None]:
    # TensorRT-RTX marks timing-cache calls deprecated (they are no-ops there); the code is right for TensorRT.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


# -------------------------------------------------------------------------------------------- timing cache


def read_timing_cache(path: Path, running: compat.TrtInfo) -> tuple[bytes | None, str]:
    """(cache bytes or None, status): status is created | loaded | ignored-corrupt | ignored-other-version."""
    if not path.exists():
        return None, "created"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        warnings.warn(f"timing cache {path} is unreadable ({exc}); building without it", stacklevel=3)
        return None, "ignored-corrupt"
    header_end = raw.find(b"\n", len(TIMING_CACHE_MAGIC))
    try:
        if not raw.startswith(TIMING_CACHE_MAGIC) or header_end < 0:
            raise ValueError("not a resnet-deploy timing cache")
        header = json.loads(raw[len(TIMING_CACHE_MAGIC) : header_end].decode("utf-8"))
        payload = raw[header_end + 1 :]
        if not isinstance(header, dict) or header.get("size") != len(payload):
            raise ValueError("truncated")
        if header.get("sha256") != sidecar.sha256_bytes(payload):
            raise ValueError("checksum mismatch")
    except (ValueError, UnicodeDecodeError) as exc:
        warnings.warn(f"timing cache {path} is corrupt ({exc}); ignoring it and writing a fresh one", stacklevel=3)
        return None, "ignored-corrupt"
    if header.get("flavour") != running.flavour or header.get("version") != running.version:
        warnings.warn(
            f"timing cache {path} is from {header.get('flavour')} {header.get('version')}, not "
            f"{running.describe()}; ignoring it and writing a fresh one",
            stacklevel=3,
        )
        return None, "ignored-other-version"
    return payload, "loaded"


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
    in the sidecar (e.g. which passes ran); ``calibration`` (INT8: ``{"method", "cache_sha256"}``) says where the
    Q/DQ scales came from. Nothing is written unless the build succeeds.
    """
    options = options or EngineBuildOptions()
    options.validate()
    out_path = check_writable(out_path)
    side_path = sidecar.sidecar_path(out_path)
    check_writable(side_path)
    running = compat.info()
    trt_mod = compat.trt
    model, onnx_bytes = _as_model(onnx_model)
    model_info = _model_info(model, info)
    precision = graph_precision(model)

    log = _Log()
    logger = make_logger(log)
    builder = trt_mod.Builder(logger)
    network = builder.create_network(compat.strongly_typed_flags())
    parser = trt_mod.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        raise UserError(_parse_error_message(parser))
    if network.num_inputs != 1:
        raise UserError(f"expected a model with one input, TensorRT found {network.num_inputs}")
    if network.num_outputs < 1:
        raise UserError("TensorRT found no outputs in the ONNX model")
    input_tensor = network.get_input(0)
    in_shape = compat.dims_list(input_tensor.shape)
    if len(in_shape) != 4 or any(d <= 0 for d in in_shape[1:]):
        raise UserError(f"expected an NCHW input with fixed C, H, W; got shape {in_shape}")
    warns: list[str] = []
    min_b, opt_b, max_b = options.min_batch, options.resolved_opt_batch(), options.max_batch
    if in_shape[0] > 0:
        if (min_b, opt_b, max_b) != (in_shape[0],) * 3:
            warns.append(f"the ONNX input has a fixed batch of {in_shape[0]}; the profile is pinned to it")
        min_b = opt_b = max_b = in_shape[0]
    chw = in_shape[1:]

    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    dims = trt_mod.Dims
    profile.set_shape(input_tensor.name, dims([min_b, *chw]), dims([opt_b, *chw]), dims([max_b, *chw]))
    config.add_optimization_profile(profile)
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

    cache_status = "disabled"
    cache_path = Path(options.timing_cache) if options.timing_cache is not None else None
    timing_cache = None
    cache_rejected = False
    if cache_path is not None:
        check_writable(cache_path)
        payload, cache_status = read_timing_cache(cache_path, running)
        mark = log.mark()
        with _quiet_deprecations():
            timing_cache = config.create_timing_cache(payload or b"")
            config.set_timing_cache(timing_cache, False)
        # TensorRT says so when it cannot use the bytes (seen with TensorRT-RTX without a GPU: every cache).
        cache_rejected = payload is not None and any("timing cache" in m.lower() for m in log.since(mark))

    network_layers = engine_inspector.layers_from_network(network)
    inputs, outputs = _io_tensors(network)
    read_back = profile.get_shape(input_tensor.name)
    profile_shapes = {
        "min": compat.dims_list(read_back[0]),
        "opt": compat.dims_list(read_back[1]),
        "max": compat.dims_list(read_back[2]),
    }

    started = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    build_seconds = time.perf_counter() - started
    if serialized is None:
        errs = log.errors()
        detail = errs[-1] if errs else "no reason given"
        raise UserError(f"TensorRT could not build the engine: {detail}")
    engine_data = bytes(memoryview(serialized))

    layer_source, layers, engine_layers = "network_definition", network_layers, None
    gpu_info = compat.gpu()
    usable, _ = compat.gpu_runtime_status()
    if usable:
        # Only where a GPU runtime exists: never run on the development/CI machines (no GPU).
        from .runtime import deserialize_engine_bytes

        _runtime, engine = deserialize_engine_bytes(engine_data, logger)
        engine_layers = int(engine.num_layers)
        layers, layer_source = engine_inspector.layers_from_engine(engine), "engine_inspector"

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
        options=options,
        layers=layers,
        layer_source=layer_source,
        extra=extra,
        calibration=calibration,
    )
    sidecar.validate(meta, str(side_path))
    with atomic_path(out_path) as tmp_engine, atomic_path(side_path) as tmp_side:
        tmp_engine.write_bytes(engine_data)
        tmp_side.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    cache_info: dict[str, Any] = {"path": str(cache_path) if cache_path else None, "status": cache_status}
    if cache_path is not None and timing_cache is not None:
        with _quiet_deprecations():
            cache_bytes = bytes(memoryview(timing_cache.serialize()))
        write_timing_cache(cache_path, cache_bytes, running)
        cache_info.update(saved_bytes=len(cache_bytes), rejected_by_tensorrt=cache_rejected)
        if running.flavour == "tensorrt_rtx":
            cache_info["note"] = "TensorRT-RTX treats timing caches as no-ops; the file is kept for TensorRT"

    warns += [m for s, m in log.messages if s == "WARNING" and "timing cache" not in m.lower()]
    return EngineBuildReport(
        engine_path=out_path,
        sidecar_path=side_path,
        engine_bytes=len(engine_data),
        build_seconds=build_seconds,
        tensorrt=running.describe(),
        precision=precision,
        network_layers=int(network.num_layers),
        engine_layers=engine_layers,
        inputs=inputs,
        outputs=outputs,
        profile=profile_shapes,
        layer_source=layer_source,
        timing_cache=cache_info,
        warnings=warns,
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
    sections = to_sidecar(info, inp["shape"])
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
