"""Running TensorRT engines on a GPU: the only module of resnet-deploy that needs a TensorRT-capable GPU.

No machine this project is developed or tested on can run TensorRT on a GPU: full TensorRT cannot be installed
anywhere here, and TensorRT-RTX does not run on the H100/H200 test GPU (compute capability 9.0). So this module is
written to NVIDIA's own sources and checked in three ways: mypy against ``tensorrt-stubs`` 10.13; the pure parts
(:func:`plan_chunks`, the 256-byte rule) on the CPU; the CUDA parts that need no TensorRT (:class:`CudaPython`,
:class:`GraphRunner`, :func:`run_chunks`) by ``benchmarks/device_checks.py`` on a plain CUDA GPU with a kernel in
place of ``execute_async_v3``. What has run everywhere: the refusals before any CUDA call (no GPU, bad sidecar,
tampered engine) and :func:`make_runtime` on TensorRT-RTX.

Sources followed:

- trtexec ``samples/common/sampleInference.cpp`` (``Iteration::createEnqueueFunction``) and ``sampleDevice.h``
  (``TrtCudaGraph``): one plain enqueue before capturing a CUDA graph (initialisation must not be captured),
  ``cudaStreamCaptureModeThreadLocal``, plain enqueues when capture fails (``endCaptureOnError``: end the
  capture, destroy a partial graph, clear the error), the graph exec destroyed with its owner.
- trtexec ``sampleEngines.cpp`` and Polygraphy ``backend/trt/loader.py`` (``EngineFromBytes``):
  ``runtime.engine_host_code_allowed = True`` before deserializing a version-compatible engine (its lean runtime is
  host code embedded in the plan); here only for engines whose sidecar says they are version-compatible.
- TensorRT's I/O tensor addresses must be 256-byte aligned (``IExecutionContext::setTensorAddress``); every bool
  result of ``set_input_shape``, ``set_tensor_address``, ``execute_async_v3`` is checked.
- cuda-python ``cuda.bindings.runtime`` (12.x/13.x signatures: ``cudaGraphInstantiate(graph, flags)``,
  ``cudaStreamBeginCapture(stream, mode)``, ``cudaStreamIsCapturing(stream)``); PyCUDA for users who have it
  (``pycuda/autoprimaryctx.py``: a retained primary context is pushed for use and popped after; events have no
  handle).
- PyTorch's stream semantics for zero-copy tensors: the engine's stream waits on the tensor's stream
  (``wait_stream``) and the tensors are marked used on it (``record_stream``) so the caching allocator does not
  hand their memory out while TensorRT still reads or writes it.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import UserError
from ...info import from_sidecar
from ..base import InferenceModel
from . import compat
from .sidecar import read_foreign_engine, sidecar_path, verify_engine_file

if TYPE_CHECKING:
    import tensorrt as trt

ALIGN = 256  # bytes: TensorRT's alignment rule for I/O tensor addresses


# ---------------------------------------------------------------------------------------------- chunk planning


@dataclass(frozen=True)
class Chunk:
    """Rows ``start .. start + rows`` of a batch; ``staged``: run through the model's own aligned buffers."""

    start: int
    rows: int
    staged: bool


def aligned_step(max_batch: int, row_bytes: tuple[int, ...], align: int = ALIGN) -> int:
    """The largest batch <= ``max_batch`` after which every tensor's next row is ``align``-byte aligned again
    (0 when no such batch exists: then only the first chunk of an aligned tensor can be read in place)."""
    unit = 1
    for row in row_bytes:
        unit = math.lcm(unit, align // math.gcd(row, align))
    return (max_batch // unit) * unit


def plan_chunks(
    n: int,
    max_batch: int,
    min_batch: int,
    row_bytes: tuple[int, int],
    pointers: tuple[int, int],
    align: int = ALIGN,
) -> list[Chunk]:
    """Split ``n`` rows of an input at ``pointers[0]`` and an output at ``pointers[1]`` (rows of ``row_bytes``)
    into engine runs. A chunk is bound in place only when both its addresses are ``align``-aligned and it holds at
    least ``min_batch`` rows; any other chunk is staged (copied through the model's own, aligned buffers and
    padded up to ``min_batch``). Chunk sizes keep in-place chunks aligned when the row sizes allow it."""
    step = aligned_step(max_batch, row_bytes, align)
    chunks: list[Chunk] = []
    i = 0
    while i < n:
        rest = n - i
        addresses = (pointers[0] + i * row_bytes[0], pointers[1] + i * row_bytes[1])
        if all(a % align == 0 for a in addresses):
            rows = rest if rest <= max_batch else (step or max_batch)
            if rows >= min_batch:
                chunks.append(Chunk(i, rows, staged=False))
                i += rows
                continue
        rows = min(rest, max_batch)
        chunks.append(Chunk(i, rows, staged=True))
        i += rows
    return chunks


BindEnqueue = Callable[[int, int, int, int], None]  # (rows, input address, output address, stream)


def run_chunks(
    cuda: Any,
    chunks: list[Chunk],
    pointers: tuple[int, int],
    row_bytes: tuple[int, int],
    staging: tuple[int, int],
    min_batch: int,
    stream: int,
    bind_enqueue: BindEnqueue,
) -> None:
    """Enqueue every chunk on ``stream``: in place, or through ``staging`` (device buffers of at least the profile's
    maximum batch): device-to-device copy in, zero padding up to ``min_batch``, run, copy the real rows out."""
    (x, y), (in_row, out_row), (stage_in, stage_out) = pointers, row_bytes, staging
    for c in chunks:
        if not c.staged:
            bind_enqueue(c.rows, x + c.start * in_row, y + c.start * out_row, stream)
            continue
        rows = max(c.rows, min_batch)
        cuda.memcpy_d2d_async(stage_in, x + c.start * in_row, c.rows * in_row, stream)
        if rows > c.rows:
            cuda.memset_async(stage_in + c.rows * in_row, 0, (rows - c.rows) * in_row, stream)
        bind_enqueue(rows, stage_in, stage_out, stream)
        cuda.memcpy_d2d_async(y + c.start * out_row, stage_out, c.rows * out_row, stream)


# ------------------------------------------------------------------------------------------ CUDA host API wrapper


class CudaPython:
    """cuda-python's runtime API (``cuda.bindings.runtime``, or ``cuda.cudart`` before cuda-python 12.6)."""

    name = "cuda-python"
    graphs = True

    def __init__(self) -> None:
        try:
            from cuda.bindings import runtime as cudart  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            from cuda import cudart  # type: ignore[import-not-found,no-redef,unused-ignore]
        self.rt: Any = cudart
        self.device = 0

    def _error(self, err: Any) -> str:
        _, text = self.rt.cudaGetErrorString(err)
        return text.decode() if isinstance(text, bytes) else str(text)

    def _check(self, result: Any) -> Any:
        err, rest = (result[0], result[1:]) if isinstance(result, tuple) else (result, ())
        if err != self.rt.cudaError_t.cudaSuccess:
            raise UserError(f"CUDA error: {self._error(err)}")
        return rest[0] if len(rest) == 1 else rest

    def set_device(self, device: int) -> None:
        self.device = device
        self._check(self.rt.cudaSetDevice(device))

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """The model's device current in the calling thread (``cudaSetDevice`` is per thread), restored after."""
        previous = int(self._check(self.rt.cudaGetDevice()))
        if previous != self.device:
            self._check(self.rt.cudaSetDevice(self.device))
        try:
            yield
        finally:
            if previous != self.device:
                self.rt.cudaSetDevice(previous)

    def release(self) -> None:
        """Nothing to release: the runtime API's primary context belongs to the process."""

    def malloc(self, nbytes: int) -> int:
        return int(self._check(self.rt.cudaMalloc(max(nbytes, 1))))

    def free(self, ptr: int) -> None:
        self._check(self.rt.cudaFree(ptr))

    def stream_create(self) -> int:
        return int(self._check(self.rt.cudaStreamCreateWithFlags(self.rt.cudaStreamNonBlocking)))

    def stream_destroy(self, stream: int) -> None:
        self._check(self.rt.cudaStreamDestroy(stream))

    def stream_sync(self, stream: int) -> None:
        self._check(self.rt.cudaStreamSynchronize(stream))

    def htod_async(self, dst: int, src: np.ndarray, stream: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.rt.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes, kind, stream))

    def dtoh_async(self, dst: np.ndarray, src: int, stream: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.rt.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes, kind, stream))

    def memcpy_d2d_async(self, dst: int, src: int, nbytes: int, stream: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice
        self._check(self.rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream))

    def memset_async(self, dst: int, value: int, nbytes: int, stream: int) -> None:
        self._check(self.rt.cudaMemsetAsync(dst, value, nbytes, stream))

    def event_create(self) -> int:
        return int(self._check(self.rt.cudaEventCreateWithFlags(self.rt.cudaEventDisableTiming)))

    def event_destroy(self, event: int) -> None:
        self._check(self.rt.cudaEventDestroy(event))

    def event_record(self, event: int, stream: int) -> None:
        self._check(self.rt.cudaEventRecord(event, stream))

    def event_sync(self, event: int) -> None:
        self._check(self.rt.cudaEventSynchronize(event))

    def stream_wait(self, stream: int, event: int) -> None:
        self._check(self.rt.cudaStreamWaitEvent(stream, event, 0))

    def is_capturing(self, stream: int) -> bool:
        status = self._check(self.rt.cudaStreamIsCapturing(stream))
        return bool(status != self.rt.cudaStreamCaptureStatus.cudaStreamCaptureStatusNone)

    def capture_begin(self, stream: int) -> None:
        # sampleDevice.h TrtCudaGraph::beginCapture: thread-local mode.
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self._check(self.rt.cudaStreamBeginCapture(stream, mode))

    def capture_end(self, stream: int, ok: bool) -> int | None:
        """End the capture; an instantiated graph exec when ``ok`` and the capture held, else None with the partial
        graph destroyed and the sticky error cleared (sampleDevice.h ``endCapture`` / ``endCaptureOnError``)."""
        err, graph = self.rt.cudaStreamEndCapture(stream)
        if err != self.rt.cudaError_t.cudaSuccess or not ok:
            if err == self.rt.cudaError_t.cudaSuccess and graph is not None and int(graph) != 0:
                self.rt.cudaGraphDestroy(graph)
            self.rt.cudaGetLastError()
            return None
        try:
            err, graph_exec = self.rt.cudaGraphInstantiate(graph, 0)
        finally:
            self.rt.cudaGraphDestroy(graph)
        if err != self.rt.cudaError_t.cudaSuccess:
            self.rt.cudaGetLastError()
            return None
        return int(graph_exec)

    def graph_launch(self, graph_exec: int, stream: int) -> None:
        self._check(self.rt.cudaGraphLaunch(graph_exec, stream))

    def graph_destroy(self, graph_exec: int) -> None:
        self._check(self.rt.cudaGraphExecDestroy(graph_exec))


class PyCuda:
    """PyCUDA, for users who have it instead of cuda-python: no CUDA graphs, no foreign (torch) streams.

    As ``pycuda/autoprimaryctx.py``: the device's primary context is retained once, pushed for every use and popped
    after (a context left pushed makes PyCUDA abort at exit), and dropped by :meth:`release`.
    PyCUDA's ``Event`` has no ``handle`` (``wrap_cudadrv.cpp``), so events are kept under ids of our own.
    """

    name = "pycuda"
    graphs = False

    def __init__(self) -> None:
        import pycuda.driver as cuda  # type: ignore[import-not-found,unused-ignore]

        self.cuda: Any = cuda
        self._allocs: dict[int, Any] = {}
        self._streams: dict[int, Any] = {}
        self._events: dict[int, Any] = {}
        self._ids = itertools.count(1)
        self._ctx: Any = None

    def set_device(self, device: int) -> None:
        self.cuda.init()
        self._ctx = self.cuda.Device(device).retain_primary_context()

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        if self._ctx is None:
            raise UserError("this model's CUDA context has been released")
        self._ctx.push()
        try:
            yield
        finally:
            self.cuda.Context.pop()

    def release(self) -> None:
        """Drop the retained primary context, as ``autoprimaryctx._finish_up`` does after its pop: PyCUDA's
        context destructor releases it (``cuDevicePrimaryCtxRelease``)."""
        self._ctx = None

    def malloc(self, nbytes: int) -> int:
        alloc = self.cuda.mem_alloc(max(nbytes, 1))
        self._allocs[int(alloc)] = alloc
        return int(alloc)

    def free(self, ptr: int) -> None:
        self._allocs.pop(ptr).free()

    def _stream(self, handle: int) -> Any:
        if handle not in self._streams:
            raise UserError("with PyCUDA, resnet-deploy runs only on its own streams: install cuda-python")
        return self._streams[handle]

    def stream_create(self) -> int:
        s = self.cuda.Stream()
        self._streams[int(s.handle)] = s
        return int(s.handle)

    def stream_destroy(self, stream: int) -> None:
        self._streams.pop(stream, None)

    def stream_sync(self, stream: int) -> None:
        self._stream(stream).synchronize()

    def htod_async(self, dst: int, src: np.ndarray, stream: int) -> None:
        self.cuda.memcpy_htod_async(dst, src, self._stream(stream))

    def dtoh_async(self, dst: np.ndarray, src: int, stream: int) -> None:
        self.cuda.memcpy_dtoh_async(dst, src, self._stream(stream))

    def memcpy_d2d_async(self, dst: int, src: int, nbytes: int, stream: int) -> None:
        self.cuda.memcpy_dtod_async(dst, src, nbytes, self._stream(stream))

    def memset_async(self, dst: int, value: int, nbytes: int, stream: int) -> None:
        self.cuda.memset_d8_async(dst, value, nbytes, self._stream(stream))

    def event_create(self) -> int:
        event_id = next(self._ids)
        self._events[event_id] = self.cuda.Event(self.cuda.event_flags.DISABLE_TIMING)
        return event_id

    def event_destroy(self, event: int) -> None:
        self._events.pop(event, None)

    def event_record(self, event: int, stream: int) -> None:
        self._events[event].record(self._stream(stream))

    def event_sync(self, event: int) -> None:
        self._events[event].synchronize()

    def stream_wait(self, stream: int, event: int) -> None:
        self._stream(stream).wait_for_event(self._events[event])

    def is_capturing(self, stream: int) -> bool:
        return False

    def capture_begin(self, stream: int) -> None:
        raise NotImplementedError

    def capture_end(self, stream: int, ok: bool) -> int | None:
        raise NotImplementedError

    def graph_launch(self, graph_exec: int, stream: int) -> None:
        raise NotImplementedError

    def graph_destroy(self, graph_exec: int) -> None:
        raise NotImplementedError


def _cuda_api() -> CudaPython | PyCuda:
    which = compat.cuda_api()
    if which == "cuda-python":
        return CudaPython()
    if which == "pycuda":
        return PyCuda()
    raise UserError("running TensorRT engines needs `cuda-python` (pip install cuda-python) or PyCUDA")


# ------------------------------------------------------------------------------------------------ CUDA graphs


class GraphRunner:
    """One CUDA graph per key (the batch size), captured the way trtexec does (``sampleInference.cpp``): a plain
    enqueue first, then capture; when capture fails the key runs plain enqueues from then on, with one warning.
    Graph execs are destroyed by :meth:`close`; none is leaked on a failed capture."""

    def __init__(self, cuda: Any, enabled: bool) -> None:
        self.cuda = cuda
        self.enabled = enabled and bool(getattr(cuda, "graphs", False))
        self._graphs: dict[int | tuple[int, ...], int | None] = {}
        self.warnings: list[str] = []

    def run(self, key: int | tuple[int, ...], stream: int, enqueue: Callable[[int], bool]) -> bool:
        """Run once on ``stream``; returns whether a graph was launched."""
        if not self.enabled:
            _require(enqueue(stream), "TensorRT failed to enqueue the inference")
            return False
        if key not in self._graphs:
            # Initialisation (first-run allocations, lazy module loads) must not be captured.
            _require(enqueue(stream), "TensorRT failed to enqueue the inference")
            self.cuda.stream_sync(stream)
            self._graphs[key] = self._capture(stream, enqueue)
            if self._graphs[key] is None:
                self.warnings.append(f"CUDA graph capture failed for batch {key}: plain enqueues are used for it")
                return False  # the warm-up enqueue above already produced this run's output
        graph = self._graphs[key]
        if graph is None:
            _require(enqueue(stream), "TensorRT failed to enqueue the inference")
            return False
        self.cuda.graph_launch(graph, stream)
        return True

    def _capture(self, stream: int, enqueue: Callable[[int], bool]) -> int | None:
        self.cuda.capture_begin(stream)
        try:
            # The engine may hold operations capture does not permit: enqueue then returns False (sampleInference).
            ok = bool(enqueue(stream))
        except Exception:
            ok = False
        return self.cuda.capture_end(stream, ok)  # type: ignore[no-any-return]

    def close(self) -> None:
        graphs, self._graphs = self._graphs, {}
        for graph in graphs.values():
            if graph is not None:
                self.cuda.graph_destroy(graph)


def _require(ok: object, message: str) -> None:
    """TensorRT reports failure of ``set_input_shape``, ``set_tensor_address``, ``execute_async_v3`` as False."""
    if not ok:
        raise UserError(message)


# ------------------------------------------------------------------------------------------ deserialization


def make_runtime(logger: trt.ILogger | None = None, version_compatible: bool = False) -> trt.Runtime:
    """A ``trt.Runtime`` on the process logger; allowed to run the lean runtime a version-compatible engine embeds
    (trtexec ``sampleEngines.cpp``: ``setEngineHostCodeAllowed(true)`` when ``versionCompatible``)."""
    from .log import logger as process_logger

    runtime = compat.trt.Runtime(logger or process_logger())
    if version_compatible:
        if not hasattr(runtime, "engine_host_code_allowed"):
            raise UserError(f"{compat.info().describe()} cannot load version-compatible engines")
        runtime.engine_host_code_allowed = True
    return runtime


def deserialize_engine_bytes(
    data: bytes, logger: trt.ILogger | None = None, version_compatible: bool = False
) -> tuple[trt.Runtime, trt.ICudaEngine]:
    """``IRuntime.deserialize_cuda_engine`` with a one-line error; returns the runtime too, which callers keep
    alive as long as the engine. Needs a GPU."""
    runtime = make_runtime(logger, version_compatible)
    engine = runtime.deserialize_cuda_engine(data)
    if engine is None:
        raise UserError(
            f"{compat.info().describe()} could not deserialize the engine: it is corrupt, or was built by "
            "another TensorRT version or for another GPU"
        )
    return runtime, engine


def deserialize_engine(path: str | Path, device: int = 0) -> tuple[trt.Runtime, trt.ICudaEngine]:
    """Verify ``path`` against its sidecar and the running TensorRT/GPU, then deserialize it. Needs a GPU."""
    data, meta, _ = verify_engine_file(path, compat.info(), compat.gpu(device))
    return deserialize_engine_bytes(data, version_compatible=bool(meta["build_options"].get("version_compatible")))


def register_engine_plugin(meta: dict[str, Any]) -> None:
    """Register what a plugin engine needs to deserialize: the Python plugin (an AOT plugin is in the engine)."""
    extra = meta.get("extra") or {}
    has_plugin = extra.get("residual_fusion") == "plugin" or int(extra.get("plugin_layers") or 0) > 0
    if has_plugin and extra.get("plugin_impl", "python") == "python":
        from .plugin.registration import register_python_plugin  # the module: the package imports us (timing)

        register_python_plugin()


# --------------------------------------------------------------------------------------------------- model


class TensorRTModel(InferenceModel):
    """A TensorRT engine behind :class:`InferenceModel`: ``predict`` on numpy or torch (CUDA zero-copy).

    Construction refuses (``UserError``) when no GPU runtime is usable or the engine does not match its
    sidecar; those checks have run in CI. Everything after them needs a TensorRT GPU.
    """

    backend = "tensorrt"

    def __init__(
        self,
        path: str | Path,
        *,
        device: int = 0,
        cuda_graphs: bool = True,
        sidecar: str | Path | None = None,
    ) -> None:
        path = Path(path)
        usable, reason = compat.gpu_runtime_status(device)
        if not usable:
            raise UserError(f"cannot run {path}: {reason}")
        meta: dict[str, Any] | None
        if sidecar is None and not sidecar_path(path).is_file():
            # an engine from trtexec or Polygraphy: loaded with a warning that nothing could be verified
            data, self.warnings = read_foreign_engine(path)
            meta = None
        else:
            data, meta, self.warnings = verify_engine_file(path, compat.info(), compat.gpu(device), sidecar)
        # ---- below this line: needs a GPU TensorRT runs on ----
        self.device = device
        self._closed = True  # until every resource below exists
        self._cuda = _cuda_api()
        self._cuda.set_device(device)
        try:
            with self._cuda.active():
                if meta is not None:
                    register_engine_plugin(meta)
                # a foreign engine that is version-compatible needs what trtexec's --versionCompatible sets: unknown
                # here, so it is not allowed to run embedded host code (deserialization then fails in one line)
                version_compatible = meta is not None and bool(meta["build_options"].get("version_compatible"))
                self._runtime, self.engine = deserialize_engine_bytes(data, version_compatible=version_compatible)
                self._setup(path, meta, cuda_graphs)
        except BaseException:
            self._cuda.release()
            raise

    def _setup(self, path: Path, meta: dict[str, Any] | None, cuda_graphs: bool) -> None:
        trt_mod = compat.trt
        engine = self.engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt_mod.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt_mod.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or not outputs:
            raise UserError(f"{path}: expected one input and at least one output, got {inputs} / {outputs}")
        if meta is not None and inputs[0] != meta["input"]["name"]:
            raise UserError(f"{path}: engine input {inputs[0]!r} differs from the sidecar's {meta['input']['name']!r}")
        in_name, out_name = inputs[0], outputs[0]
        mn, _, mx = (tuple(compat.dims_list(s)) for s in engine.get_tensor_profile_shape(in_name, 0))
        self.min_batch = mn[0]
        # An engine built with an H x W range (build --min/--max-shapes): H and W are None in input_shape and each
        # input is checked against the profile's range; buffers are sized for a max batch at the max H x W.
        self.hw_range: tuple[tuple[int, ...], tuple[int, ...]] | None = (
            (mn[2:], mx[2:]) if len(mx) == 4 and mn[2:] != mx[2:] else None
        )
        tail = mx[1:] if self.hw_range is None else (mx[1], None, None)
        self._in_dtype = np.dtype(compat.numpy_dtype(engine.get_tensor_dtype(in_name)))
        self._out_dtype = np.dtype(compat.numpy_dtype(engine.get_tensor_dtype(out_name)))
        self._out_tail = tuple(compat.dims_list(engine.get_tensor_shape(out_name)))[1:]
        super().__init__(
            input_name=in_name,
            input_shape=(None, *tail),
            input_dtype=self._in_dtype,
            output_name=out_name,
            max_batch=mx[0],
            info=from_sidecar(meta) if meta is not None else None,
            path=path,
        )
        self.precision = str(meta["precision"]) if meta is not None else "unknown"
        self.sidecar = meta
        context = engine.create_execution_context()
        if context is None:
            raise UserError(f"{path}: TensorRT could not create an execution context (out of device memory?)")
        self.context = context
        self._lock = threading.Lock()
        self._stream = self._cuda.stream_create()
        self._done = self._cuda.event_create()  # recorded after every enqueue: orders work across streams
        self._extra_outputs = outputs[1:]
        self._in_row = int(np.prod(mx[1:])) * self._in_dtype.itemsize  # the largest row (max H x W)
        self._row_shape: tuple[int, ...] = mx[1:]  # the C, H, W bound next: set under the lock before each run
        self._out_row = int(np.prod(self._out_tail)) * self._out_dtype.itemsize
        self._in_ptr = self._cuda.malloc(mx[0] * self._in_row)  # cudaMalloc: 256-byte aligned
        self._out_ptrs: dict[str, int] = {}
        for name in outputs:
            tail = tuple(compat.dims_list(engine.get_tensor_shape(name)))[1:]
            itemsize = np.dtype(compat.numpy_dtype(engine.get_tensor_dtype(name))).itemsize
            self._out_ptrs[name] = self._cuda.malloc(mx[0] * int(np.prod(tail)) * itemsize)
        self._graphs = GraphRunner(self._cuda, cuda_graphs)
        self._torch_stream: Any = None
        self._closed = False

    # -- helpers --------------------------------------------------------------------------------------------

    def _shape_fits(self, shape: tuple[int, ...]) -> bool:
        """Whether one input's C, H, W fit the engine: its fixed C (and H, W), or the profile's H x W range."""
        fixed = self.input_shape[1:]
        if len(shape) != len(fixed) or any(w is not None and w != g for w, g in zip(fixed, shape, strict=True)):
            return False
        if self.hw_range is None:
            return True
        lo, hi = self.hw_range
        return all(a <= d <= b for a, d, b in zip(lo, shape[1:], hi, strict=True))

    def validate(self, x: np.ndarray) -> None:
        super().validate(x)
        if self.hw_range is not None and not self._shape_fits(tuple(x.shape[1:])):
            (h0, w0), (h1, w1) = self.hw_range
            raise UserError(
                f"input has shape {tuple(x.shape)}; the engine's profile takes H x W from {h0}x{w0} to {h1}x{w1}"
            )

    def _bind(self, rows: int, in_ptr: int, out_ptr: int) -> None:
        # the full NCHW shape of this run: IExecutionContext::setInputShape takes every dimension, and must lie
        # inside the profile (NVIDIA/TensorRT samples/common/sampleInference.cpp sets it from the --shapes given)
        shape = (rows, *self._row_shape)
        _require(
            self.context.set_input_shape(self.input_name, shape),
            f"TensorRT rejected input shape {shape} (profile {self.min_batch}..{self.max_batch})",
        )
        for name, ptr in ((self.input_name, in_ptr), (self.output_name, out_ptr)):
            if ptr % ALIGN:
                raise UserError(f"internal error: {name} address {ptr:#x} is not {ALIGN}-byte aligned")
            _require(self.context.set_tensor_address(name, ptr), f"TensorRT rejected the address of {name}")
        for name in self._extra_outputs:
            _require(
                self.context.set_tensor_address(name, self._out_ptrs[name]), f"TensorRT rejected the address of {name}"
            )

    def _enqueue(self, stream: int) -> bool:
        return bool(self.context.execute_async_v3(stream))

    def _bind_enqueue(self, rows: int, in_ptr: int, out_ptr: int, stream: int) -> None:
        self._bind(rows, in_ptr, out_ptr)
        _require(self._enqueue(stream), "TensorRT failed to enqueue the inference")

    def _pad(self, x: np.ndarray) -> np.ndarray:
        # A batch below the profile minimum (the tail of a split batch) is padded; the padding is dropped after.
        if x.shape[0] >= self.min_batch:
            return x
        pad = np.zeros((self.min_batch - x.shape[0], *x.shape[1:]), dtype=x.dtype)
        return np.concatenate([x, pad], axis=0)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """One batch (<= max_batch) from host memory: H2D, execute (or replay a CUDA graph), D2H."""
        n = batch.shape[0]
        x = np.ascontiguousarray(self._pad(batch))
        b = x.shape[0]
        out = np.empty((b, *self._out_tail), dtype=self._out_dtype)
        with self._lock:
            self._check_open()
            with self._cuda.active():
                s = self._stream
                self._cuda.stream_wait(s, self._done)  # the staging buffers may be in use on a caller's stream
                self._cuda.htod_async(self._in_ptr, x, s)
                self._row_shape = tuple(x.shape[1:])
                self._bind(b, self._in_ptr, self._out_ptrs[self.output_name])
                # one CUDA graph per bound shape: a graph replays the shape it was captured with
                self._graphs.run(b if self.hw_range is None else (b, *x.shape[2:]), s, self._enqueue)
                self._cuda.dtoh_async(out, self._out_ptrs[self.output_name], s)
                self._cuda.event_record(self._done, s)
                self._cuda.stream_sync(s)
        return out[:n]

    def _check_open(self) -> None:
        if self._closed:
            raise UserError("this model has been closed")

    # -- torch CUDA tensors: zero-copy ----------------------------------------------------------------------

    def predict(self, batch: Any) -> np.ndarray:
        """Logits as numpy; CUDA torch tensors are read in place (no host round trip on the way in)."""
        if _is_cuda_tensor(batch):
            # as the base class's prepare() does for host input: one image gets a batch axis, other float widths
            # are converted (Tensor.unsqueeze / Tensor.to: plain torch, no TensorRT call involved)
            if batch.ndim == len(self.input_shape) - 1:
                batch = batch.unsqueeze(0)
            if batch.is_floating_point() and batch.dtype != _torch_dtype(self.input_dtype):
                batch = batch.to(_torch_dtype(self.input_dtype))
            return self.predict_async(batch, sync=True).cpu().numpy()  # type: ignore[no-any-return]
        return super().predict(batch)

    def predict_async(self, batch: Any, stream: Any = None, sync: bool = False) -> Any:
        """Enqueue a CUDA torch tensor and return the output CUDA tensor without waiting.

        ``stream``: a ``torch.cuda.Stream`` or a raw handle to enqueue on (the caller synchronizes it), or None:
        the model's own stream, ordered after torch's current stream and before it again, so the result can be
        used on the current stream at once. Zero-copy: TensorRT reads ``batch`` and writes a fresh tensor in place
        where their addresses are 256-byte aligned, through the model's own buffers where not. Inside a CUDA graph
        capture on ``stream`` no cross-stream event is used (capture forbids waiting on work outside it)."""
        import torch

        if not _is_cuda_tensor(batch):
            raise UserError("predict_async takes a CUDA torch tensor")
        device_index = batch.device.index if batch.device.index is not None else torch.cuda.current_device()
        if device_index != self.device:
            raise UserError(f"the tensor is on cuda:{device_index}, the model on cuda:{self.device}")
        x = batch.contiguous()
        want = _torch_dtype(self.input_dtype)
        if x.dtype != want:
            raise UserError(f"input dtype {x.dtype} does not match the model's {want}")
        if x.ndim != len(self.input_shape) or not self._shape_fits(tuple(x.shape[1:])) or x.shape[0] == 0:
            raise UserError(f"input has shape {tuple(x.shape)}; the model takes {self.describe_shape()}")
        in_row = int(np.prod(x.shape[1:])) * self._in_dtype.itemsize  # this call's H x W (<= the buffers' max)
        with self._lock:
            self._check_open()
            with self._cuda.active():
                current = torch.cuda.current_stream(x.device)
                own = stream is None
                if own:
                    if self._torch_stream is None:
                        self._torch_stream = torch.cuda.ExternalStream(self._stream, device=x.device)
                    target = self._torch_stream
                elif isinstance(stream, torch.cuda.Stream):
                    target = stream
                else:
                    target = torch.cuda.ExternalStream(int(stream), device=x.device)
                handle = int(target.cuda_stream)
                capturing = self._cuda.is_capturing(handle)
                same = handle == int(current.cuda_stream)
                out = torch.empty((x.shape[0], *self._out_tail), dtype=_torch_dtype(self._out_dtype), device=x.device)
                if not capturing:
                    if not same:
                        target.wait_stream(current)  # x was produced, and out allocated, on the current stream
                    self._cuda.stream_wait(handle, self._done)  # the staging buffers' previous user
                plan = plan_chunks(
                    x.shape[0],
                    self.max_batch or x.shape[0],
                    self.min_batch,
                    (in_row, self._out_row),
                    (int(x.data_ptr()), int(out.data_ptr())),
                )
                self._row_shape = tuple(x.shape[1:])
                run_chunks(
                    self._cuda,
                    plan,
                    (int(x.data_ptr()), int(out.data_ptr())),
                    (in_row, self._out_row),
                    (self._in_ptr, self._out_ptrs[self.output_name]),
                    self.min_batch,
                    handle,
                    self._bind_enqueue,
                )
                if not capturing:
                    self._cuda.event_record(self._done, handle)
                    if not same:
                        x.record_stream(target)  # the caching allocator must not reuse them before `target` is done
                        out.record_stream(target)
                        if own:
                            current.wait_stream(target)
        if sync:
            target.synchronize()
        return out

    def close(self) -> None:
        """Wait for every enqueued inference, on any stream, then free graphs, memory and the stream (idempotent)."""
        if getattr(self, "_closed", True):
            return
        with self._lock:
            self._closed = True
            with self._cuda.active():
                self._cuda.event_sync(self._done)  # the last enqueue on any stream (each waited for the one before)
                self._cuda.stream_sync(self._stream)
                self._graphs.close()
                for ptr in [self._in_ptr, *self._out_ptrs.values()]:
                    self._cuda.free(ptr)
                self._cuda.event_destroy(self._done)
                self._torch_stream = None
                self._cuda.stream_destroy(self._stream)
                del self.context
                del self.engine
                del self._runtime
            self._cuda.release()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _is_cuda_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and bool(getattr(x, "is_cuda", False))


def _torch_dtype(dtype: np.dtype[Any]) -> Any:
    import torch

    table = {np.dtype(np.float32): torch.float32, np.dtype(np.float16): torch.float16, np.dtype(np.int8): torch.int8}
    if dtype not in table:
        raise UserError(f"unsupported engine tensor dtype {dtype}")
    return table[dtype]
