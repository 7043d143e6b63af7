"""The CUDA-only part of the benchmark: per-iteration H2D, compute and D2H times from CUDA events.

Needs a CUDA GPU (its tests are marked ``cuda``; no GPU has run them yet). It is kept to two small runner
classes with the same interface as :class:`resnet_deploy.benchmark.core.HostRunner`, so everything around them
(statistics, reports, scheduling) is exercised on the CPU path. Each iteration does, on one stream::

    e0  H2D (pinned host -> device)  e1  compute  e2  D2H (device -> pinned host)  e3  synchronize

``latency`` is the host's wall time of the whole iteration (as trtexec's "Latency" = H2D + compute + D2H, plus the
synchronisation); the event intervals give ``h2d_ms``, ``compute_ms`` and ``d2h_ms``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UserError


def cuda_available() -> bool:
    """True when PyTorch can see a CUDA device (False on CPU-only builds)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def gpu_name(device: int = 0) -> str | None:
    if not cuda_available():
        return None
    import torch

    return str(torch.cuda.get_device_name(device))


class _EventTimed:
    """Shared machinery: pinned buffers, four timing events, a private stream."""

    device = "cuda"

    def __init__(self) -> None:
        if not cuda_available():
            raise UserError("CUDA timing needs a GPU visible to PyTorch; none is")
        import torch

        self.torch = torch
        self.stream = torch.cuda.Stream()
        self.events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
        self.cuda_graphs = False
        self.graph: Any = None
        self.static_out: Any = None
        self.notes: list[str] = []
        self.host_out: Any = None

    def _buffers(self, x: np.ndarray) -> None:
        torch = self.torch
        self.host_in = torch.from_numpy(x).pin_memory()
        self.dev_in = torch.empty(self.host_in.shape, dtype=self.host_in.dtype, device="cuda")

    def _enqueue(self) -> Any:
        """Launch one inference on ``self.stream`` without a CUDA graph; returns the device output."""
        raise NotImplementedError

    def _compute(self) -> Any:
        if self.graph is not None:
            self.graph.replay()
            return self.static_out
        return self._enqueue()

    def _prepared(self) -> None:
        """End of ``prepare``: record whether a graph was captured, pin a host buffer for the output."""
        self.cuda_graphs = self.graph is not None
        self.host_out = self.torch.empty(self.static_out.shape, dtype=self.static_out.dtype).pin_memory()

    def step(self) -> dict[str, float]:
        torch = self.torch
        e0, e1, e2, e3 = self.events
        with torch.cuda.stream(self.stream):
            e0.record(self.stream)
            self.dev_in.copy_(self.host_in, non_blocking=True)
            e1.record(self.stream)
            out = self._compute()
            e2.record(self.stream)
            self.host_out.copy_(out, non_blocking=True)
            e3.record(self.stream)
        self.stream.synchronize()
        return {"h2d_ms": e0.elapsed_time(e1), "compute_ms": e1.elapsed_time(e2), "d2h_ms": e2.elapsed_time(e3)}

    def release(self) -> None:
        self.torch.cuda.synchronize()


class TorchCudaRunner(_EventTimed):
    """A torch module on CUDA, optionally FP16 + channels-last, replayed as a CUDA graph by default."""

    def __init__(
        self, module: Any, input_dtype: np.dtype[Any], half: bool, channels_last: bool, cuda_graphs: bool = True
    ) -> None:
        super().__init__()
        torch = self.torch
        self.half = half
        self.channels_last = channels_last
        self.want_graphs = cuda_graphs
        self.module = module.eval().to("cuda")
        if half:
            self.module = self.module.half()
        if channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        self.input_dtype = np.dtype(input_dtype)

    def _forward(self) -> Any:
        torch = self.torch
        x = self.dev_in.half() if self.half else self.dev_in
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.module(x).float()

    def prepare(self, x: np.ndarray) -> None:
        torch = self.torch
        self._buffers(x.astype(self.input_dtype, copy=False))
        self.graph = None
        with torch.inference_mode():
            # Warm-up on the side stream before capture, as torch.cuda.graphs requires.
            with torch.cuda.stream(self.stream):
                for _ in range(3):
                    self.static_out = self._forward()
            self.stream.synchronize()
            if self.want_graphs:
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, stream=self.stream):
                    self.static_out = self._forward()
                self.graph = graph
        self._prepared()

    def _enqueue(self) -> Any:
        with self.torch.inference_mode():
            return self._forward()


class TensorRTCudaRunner(_EventTimed):
    """A :class:`~resnet_deploy.backends.tensorrt.runtime.TensorRTModel` fed from torch CUDA buffers.

    Compute is the engine's ``predict_async`` (``execute_async_v3`` on our stream), captured into a CUDA graph
    when ``cuda_graphs`` is set and capture succeeds; a failed capture falls back to plain enqueues, noted.

    The capture runs on ``self.stream``, the stream ``predict_async`` enqueues on, after two plain enqueues
    (trtexec ``sampleInference.cpp``: initialisation is never captured). ``predict_async`` sees the capture
    (``cudaStreamIsCapturing``) and then neither waits on nor records an event from outside it: a wait on an
    event recorded before the capture is ``cudaErrorStreamCaptureIsolation``, which made every capture fail.
    """

    def __init__(self, model: Any, cuda_graphs: bool = True) -> None:
        super().__init__()
        self.model = model
        self.want_graphs = cuda_graphs

    def prepare(self, x: np.ndarray) -> None:
        torch = self.torch
        self._buffers(x.astype(self.model.input_dtype, copy=False))
        self.dev_in.copy_(self.host_in)
        self.graph = None
        for _ in range(2):  # TensorRT wants an enqueue after a shape change before any capture
            self.static_out = self.model.predict_async(self.dev_in, stream=self.stream, sync=True)
        if self.want_graphs:
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph, stream=self.stream):
                    self.static_out = self.model.predict_async(self.dev_in, stream=self.stream)
                self.graph = graph
            except Exception as exc:  # capture rules are the driver's; fall back rather than abort the run
                torch.cuda.synchronize()
                self.notes.append(f"CUDA graph capture failed ({type(exc).__name__}: {exc}); plain enqueue used")
                self.static_out = self.model.predict_async(self.dev_in, stream=self.stream, sync=True)
        self._prepared()

    def _enqueue(self) -> Any:
        return self.model.predict_async(self.dev_in, stream=self.stream)
