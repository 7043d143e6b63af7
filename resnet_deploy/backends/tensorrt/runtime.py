"""Running TensorRT engines on a GPU: the only module of resnet-deploy that needs a TensorRT-capable GPU.

No machine this project is developed or tested on can execute a line below that touches a CUDA device: full
TensorRT cannot be installed anywhere here, and TensorRT-RTX does not run on the H100/H200 test GPU (compute
capability 9.0). Everything here is written to the documented TensorRT 10.x Python API (type-checked with mypy
against ``tensorrt-stubs`` 10.13) and cuda-python's ``cuda.bindings.runtime``; its tests are marked
``tensorrt_gpu`` and skip without one. What *has* run: the checks that refuse to start (no GPU, bad sidecar,
tampered engine), which happen before any CUDA call.

Design: one ``IExecutionContext`` per model, guarded by a lock (a context is not thread-safe); device buffers
for the profile's maximum batch, allocated once; the tensor-name API (``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``); optional CUDA-graph capture per batch size for the numpy path
(fixed buffers, so a captured graph stays valid); torch CUDA tensors bypass host copies (``data_ptr``).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import UserError
from ...info import from_sidecar
from ..base import InferenceModel
from . import compat
from .sidecar import verify_engine_file

if TYPE_CHECKING:
    import tensorrt as trt


# ------------------------------------------------------------------------------------- CUDA host API wrapper


class _CudaPython:
    """cuda-python's runtime API (``cuda.bindings.runtime``, or ``cuda.cudart`` before cuda-python 12.6)."""

    name = "cuda-python"
    graphs = True

    def __init__(self) -> None:
        try:
            from cuda.bindings import runtime as cudart  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            from cuda import cudart  # type: ignore[import-not-found,no-redef,unused-ignore]
        self.rt: Any = cudart

    def _check(self, result: Any) -> Any:
        err, rest = (result[0], result[1:]) if isinstance(result, tuple) else (result, ())
        if err != self.rt.cudaError_t.cudaSuccess:
            _, text = self.rt.cudaGetErrorString(err)
            raise UserError(f"CUDA error: {text.decode() if isinstance(text, bytes) else text}")
        return rest[0] if len(rest) == 1 else rest

    def set_device(self, device: int) -> None:
        self._check(self.rt.cudaSetDevice(device))

    def malloc(self, nbytes: int) -> int:
        return int(self._check(self.rt.cudaMalloc(nbytes)))

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

    def event_create(self) -> int:
        return int(self._check(self.rt.cudaEventCreateWithFlags(self.rt.cudaEventDisableTiming)))

    def event_destroy(self, event: int) -> None:
        self._check(self.rt.cudaEventDestroy(event))

    def event_record(self, event: int, stream: int) -> None:
        self._check(self.rt.cudaEventRecord(event, stream))

    def stream_wait(self, stream: int, event: int) -> None:
        self._check(self.rt.cudaStreamWaitEvent(stream, event, 0))

    def capture_begin(self, stream: int) -> None:
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self._check(self.rt.cudaStreamBeginCapture(stream, mode))

    def capture_end(self, stream: int) -> int:
        graph = self._check(self.rt.cudaStreamEndCapture(stream))
        try:
            return int(self._check(self.rt.cudaGraphInstantiate(graph, 0)))
        finally:
            self._check(self.rt.cudaGraphDestroy(graph))

    def graph_launch(self, graph_exec: int, stream: int) -> None:
        self._check(self.rt.cudaGraphLaunch(graph_exec, stream))

    def graph_destroy(self, graph_exec: int) -> None:
        self._check(self.rt.cudaGraphExecDestroy(graph_exec))


class _PyCuda:
    """PyCUDA, for users who have it instead of cuda-python: no CUDA graphs, no foreign (torch) streams."""

    name = "pycuda"
    graphs = False

    def __init__(self) -> None:
        import pycuda.driver as cuda  # type: ignore[import-not-found,unused-ignore]

        self.cuda: Any = cuda
        self._allocs: dict[int, Any] = {}
        self._streams: dict[int, Any] = {}
        self._events: dict[int, Any] = {}
        self._ctx: Any = None

    def set_device(self, device: int) -> None:
        self.cuda.init()
        self._ctx = self.cuda.Device(device).retain_primary_context()
        self._ctx.push()

    def malloc(self, nbytes: int) -> int:
        alloc = self.cuda.mem_alloc(nbytes)
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

    def event_create(self) -> int:
        e = self.cuda.Event(self.cuda.event_flags.DISABLE_TIMING)
        self._events[int(e.handle)] = e
        return int(e.handle)

    def event_destroy(self, event: int) -> None:
        self._events.pop(event, None)

    def event_record(self, event: int, stream: int) -> None:
        self._events[event].record(self._stream(stream))

    def stream_wait(self, stream: int, event: int) -> None:
        self._stream(stream).wait_for_event(self._events[event])

    def capture_begin(self, stream: int) -> None:
        raise NotImplementedError

    def capture_end(self, stream: int) -> int:
        raise NotImplementedError

    def graph_launch(self, graph_exec: int, stream: int) -> None:
        raise NotImplementedError

    def graph_destroy(self, graph_exec: int) -> None:
        raise NotImplementedError


def _cuda_api() -> _CudaPython | _PyCuda:
    which = compat.cuda_api()
    if which == "cuda-python":
        return _CudaPython()
    if which == "pycuda":
        return _PyCuda()
    raise UserError("running TensorRT engines needs `cuda-python` (pip install cuda-python) or PyCUDA")


# ------------------------------------------------------------------------------------------ deserialization


def deserialize_engine_bytes(data: bytes, logger: trt.ILogger | None = None) -> tuple[trt.Runtime, trt.ICudaEngine]:
    """``IRuntime.deserialize_cuda_engine`` with a one-line error; returns the runtime too, which callers keep
    alive as long as the engine. Needs a GPU."""
    trt_mod = compat.trt
    runtime = trt_mod.Runtime(logger or trt_mod.Logger(trt_mod.Logger.ERROR))
    engine = runtime.deserialize_cuda_engine(data)
    if engine is None:
        raise UserError(
            f"{compat.info().describe()} could not deserialize the engine: it is corrupt, or was built by "
            "another TensorRT version or for another GPU"
        )
    return runtime, engine


def deserialize_engine(path: str | Path, device: int = 0) -> tuple[trt.Runtime, trt.ICudaEngine]:
    """Verify ``path`` against its sidecar and the running TensorRT/GPU, then deserialize it. Needs a GPU."""
    data, _, _ = verify_engine_file(path, compat.info(), compat.gpu(device))
    return deserialize_engine_bytes(data)


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
        data, meta, self.warnings = verify_engine_file(path, compat.info(), compat.gpu(device), sidecar)
        # ---- below this line: needs a GPU TensorRT runs on ----
        self._cuda = _cuda_api()
        self._cuda.set_device(device)
        if meta["extra"].get("residual_fusion") == "plugin":
            # the Python IPluginV3 lives in this process: TensorRT needs it registered before deserializing
            from .plugin import register_python_plugin

            register_python_plugin()
        self._runtime, self.engine = deserialize_engine_bytes(data)
        trt_mod = compat.trt
        inputs = [
            self.engine.get_tensor_name(i)
            for i in range(self.engine.num_io_tensors)
            if self.engine.get_tensor_mode(self.engine.get_tensor_name(i)) == trt_mod.TensorIOMode.INPUT
        ]
        outputs = [
            self.engine.get_tensor_name(i)
            for i in range(self.engine.num_io_tensors)
            if self.engine.get_tensor_mode(self.engine.get_tensor_name(i)) == trt_mod.TensorIOMode.OUTPUT
        ]
        if len(inputs) != 1 or not outputs:
            raise UserError(f"{path}: expected one input and at least one output, got {inputs} / {outputs}")
        if inputs[0] != meta["input"]["name"]:
            raise UserError(f"{path}: engine input {inputs[0]!r} differs from the sidecar's {meta['input']['name']!r}")
        in_name, out_name = inputs[0], outputs[0]
        mn, _, mx = (tuple(compat.dims_list(s)) for s in self.engine.get_tensor_profile_shape(in_name, 0))
        self.min_batch = mn[0]
        self._in_dtype = np.dtype(compat.numpy_dtype(self.engine.get_tensor_dtype(in_name)))
        self._out_dtype = np.dtype(compat.numpy_dtype(self.engine.get_tensor_dtype(out_name)))
        self._out_tail = tuple(compat.dims_list(self.engine.get_tensor_shape(out_name)))[1:]
        super().__init__(
            input_name=in_name,
            input_shape=(None, *mx[1:]),
            input_dtype=self._in_dtype,
            output_name=out_name,
            max_batch=mx[0],
            info=from_sidecar(meta),
            path=path,
        )
        self.precision = str(meta["precision"])
        self.sidecar = meta
        self.context = self.engine.create_execution_context()
        self._lock = threading.Lock()
        self._stream = self._cuda.stream_create()
        self._done = self._cuda.event_create()  # recorded after every enqueue: orders work across streams
        self._extra_outputs = outputs[1:]
        self._in_ptr = self._cuda.malloc(int(np.prod(mx)) * self._in_dtype.itemsize)
        self._out_ptrs: dict[str, int] = {}
        for name in outputs:
            tail = tuple(compat.dims_list(self.engine.get_tensor_shape(name)))[1:]
            itemsize = np.dtype(compat.numpy_dtype(self.engine.get_tensor_dtype(name))).itemsize
            self._out_ptrs[name] = self._cuda.malloc(mx[0] * int(np.prod(tail)) * itemsize)
        self._use_graphs = cuda_graphs and self._cuda.graphs
        self._graphs: dict[int, int] = {}
        self._closed = False

    # -- helpers --------------------------------------------------------------------------------------------

    def _bind(self, batch: int, in_ptr: int, out_ptr: int) -> None:
        shape = (batch, *self.input_shape[1:])
        if not self.context.set_input_shape(self.input_name, shape):
            raise UserError(f"TensorRT rejected input shape {shape} (profile {self.min_batch}..{self.max_batch})")
        self.context.set_tensor_address(self.input_name, in_ptr)
        self.context.set_tensor_address(self.output_name, out_ptr)
        for name in self._extra_outputs:
            self.context.set_tensor_address(name, self._out_ptrs[name])

    def _enqueue(self, stream: int) -> None:
        if not self.context.execute_async_v3(stream):
            raise UserError("TensorRT failed to enqueue the inference")

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
            s = self._stream
            self._cuda.stream_wait(s, self._done)
            self._cuda.htod_async(self._in_ptr, x, s)
            self._bind(b, self._in_ptr, self._out_ptrs[self.output_name])
            if self._use_graphs:
                graph = self._graphs.get(b)
                if graph is None:
                    # TensorRT asks for one plain enqueue after a shape change before capturing.
                    self._enqueue(s)
                    self._cuda.capture_begin(s)
                    try:
                        self._enqueue(s)
                    finally:
                        graph = self._cuda.capture_end(s)
                    self._graphs[b] = graph
                self._cuda.graph_launch(graph, s)
            else:
                self._enqueue(s)
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
            return self.predict_async(batch, sync=True).cpu().numpy()  # type: ignore[no-any-return]
        return super().predict(batch)

    def predict_async(self, batch: Any, stream: Any = None, sync: bool = False) -> Any:
        """Enqueue a CUDA torch tensor on ``stream`` (a ``torch.cuda.Stream``, a raw handle, or None for torch's
        current stream) and return the output CUDA tensor without waiting; the caller synchronizes the stream.
        Zero-copy: TensorRT reads ``batch.data_ptr()`` and writes into a fresh torch tensor."""
        import torch

        if not _is_cuda_tensor(batch):
            raise UserError("predict_async takes a CUDA torch tensor")
        x = batch.contiguous()
        want = _torch_dtype(self.input_dtype)
        if x.dtype != want:
            raise UserError(f"input dtype {x.dtype} does not match the model's {want}")
        if x.ndim != len(self.input_shape) or tuple(x.shape[1:]) != tuple(self.input_shape[1:]) or x.shape[0] == 0:
            raise UserError(f"input has shape {tuple(x.shape)}; the model takes {self.describe_shape()}")
        if stream is None:
            handle = int(torch.cuda.current_stream(x.device).cuda_stream)
        else:
            handle = int(getattr(stream, "cuda_stream", stream))
        step = self.max_batch or x.shape[0]
        if x.shape[0] % step and x.shape[0] % step < self.min_batch:
            raise UserError(f"batch {x.shape[0]} leaves a remainder below the engine's minimum batch {self.min_batch}")
        out = torch.empty((x.shape[0], *self._out_tail), dtype=_torch_dtype(self._out_dtype), device=x.device)
        with self._lock:
            self._check_open()
            self._cuda.stream_wait(handle, self._done)
            for i in range(0, x.shape[0], step):
                chunk, dest = x[i : i + step], out[i : i + step]
                self._bind(chunk.shape[0], int(chunk.data_ptr()), int(dest.data_ptr()))
                self._enqueue(handle)
            self._cuda.event_record(self._done, handle)
        if sync:
            self._cuda.stream_sync(handle)
        return out

    def close(self) -> None:
        """Free device memory, graphs and the stream (idempotent)."""
        if getattr(self, "_closed", True):
            return
        with self._lock:
            self._closed = True
            self._cuda.stream_sync(self._stream)
            for graph in self._graphs.values():
                self._cuda.graph_destroy(graph)
            self._graphs.clear()
            for ptr in [self._in_ptr, *self._out_ptrs.values()]:
                self._cuda.free(ptr)
            self._cuda.event_destroy(self._done)
            self._cuda.stream_destroy(self._stream)
            del self.context
            del self.engine
            del self._runtime

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
