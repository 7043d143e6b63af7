"""What a CUDA GPU without TensorRT can show about resnet-deploy's TensorRT path (issue #13), as PASS/FAIL lines.

    python benchmarks/device_checks.py [--kernels-dir DIR] [--out DIR]

1. ``plugin-launch``: the Python plugin's launch path (``backends/tensorrt/plugin/cuda.py``: PTX module loaded with
   ``cuModuleLoadData``, arguments packed for ``cuLaunchKernel`` as NVIDIA's ``python_plugin`` sample does) on
   torch tensors and a torch stream, against ``torch.relu(a + b)``; the module unloaded again.
2. ``graphs``: the runtime's CUDA-graph handling (``runtime.GraphRunner`` over ``runtime.CudaPython``) with the
   kernel launch standing in for ``execute_async_v3``: warm-up enqueue, capture, replay on new data; a capture that
   fails (a stream synchronize inside it) falls back to plain enqueues and leaks no graph.
3. ``chunks``: the 256-byte rule (``runtime.plan_chunks`` + ``run_chunks``) on real device pointers: a view at a
   4000-byte row offset is staged through aligned buffers, a tail below the minimum batch is padded, every
   in-place address handed to the "engine" is aligned, and the output equals ``torch.relu(x)``.

Each part is guarded: a failure prints ``FAIL <part>: <reason>`` and the next part still runs. Writes
``device_checks.json`` to ``--out``. Exit status: 0 all passed, 1 a check failed, 0 with ``SKIP`` lines when no
CUDA GPU (or no cuda-python) is here, so it can run anywhere.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernels-dir", type=Path, help="kernel build (default: $RESNET_DEPLOY_KERNELS_DIR or build/)")
    ap.add_argument("--out", type=Path, default=None, help="folder for device_checks.json (default: print only)")
    return ap.parse_args(argv)


def why_not_here() -> str | None:
    """Why these checks cannot run on this machine, or None."""
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible to PyTorch"
    try:
        from cuda.bindings import driver  # noqa: F401
    except ImportError:
        try:
            from cuda import cuda  # noqa: F401
        except ImportError:
            return "cuda-python is not installed"
    return None


class Results:
    def __init__(self) -> None:
        self.parts: dict[str, dict[str, Any]] = {}

    def run(self, name: str, fn: Callable[[], list[str]]) -> None:
        t0 = time.perf_counter()
        try:
            details = fn()
        except Exception as exc:  # every part is guarded: report, go on
            self.parts[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
            print(f"FAIL {name}: {type(exc).__name__}: {exc}", flush=True)
            return
        self.parts[name] = {"ok": True, "details": details, "seconds": round(time.perf_counter() - t0, 2)}
        print(f"PASS {name}: " + "; ".join(details), flush=True)

    @property
    def ok(self) -> bool:
        return all(p["ok"] for p in self.parts.values())


def _ulp16(torch: Any, got: Any, want: Any) -> int:
    gi = got.view(torch.int16).to(torch.int32).masked_fill(got == 0, 0)
    wi = want.view(torch.int16).to(torch.int32).masked_fill(want == 0, 0)
    return int((gi - wi).abs().max()) if got.numel() else 0


def check_plugin_launch(kernels: Any, torch: Any) -> list[str]:
    """Every dtype through Kernels.launch on a torch stream, several sizes, against torch."""
    import numpy as np

    from resnet_deploy.backends.tensorrt.plugin.cuda import _context_key, _driver

    gen = torch.Generator(device="cuda").manual_seed(0)
    stream = torch.cuda.Stream()
    details = []
    for dtype, tdtype in (("float32", torch.float32), ("float16", torch.float16), ("int8", torch.int8)):
        for n in (1, 7, 4097, 64 * 56 * 56 + 3):
            if dtype == "int8":
                a = torch.randint(-128, 128, (n,), dtype=torch.int8, device="cuda", generator=gen)
                b = torch.randint(-128, 128, (n,), dtype=torch.int8, device="cuda", generator=gen)
            else:
                a = (torch.randn(n, device="cuda", generator=gen) * 3).to(tdtype)
                b = (torch.randn(n, device="cuda", generator=gen) * 3).to(tdtype)
            y = torch.full_like(a, 90 if dtype == "int8" else float("nan"))
            scales = (0.02, 0.031, 0.047) if dtype == "int8" else None
            torch.cuda.synchronize()
            kernels.launch(dtype, a.data_ptr(), b.data_ptr(), y.data_ptr(), n, int(stream.cuda_stream), scales)
            stream.synchronize()
            if dtype == "int8":
                f32 = np.float32
                sa, sb, sy = (f32(s) for s in scales)  # type: ignore[union-attr]
                v = np.maximum(a.cpu().numpy().astype(f32) * sa + b.cpu().numpy().astype(f32) * sb, f32(0))
                want = np.clip(np.rint(v / sy), -128, 127).astype(np.int8)
                bad = int((y.cpu().numpy() != want).sum())
            elif dtype == "float32":
                bad = int((y != torch.relu(a + b)).sum())
            else:
                bad = 0 if _ulp16(torch, y, torch.relu(a + b)) <= 1 and not bool(torch.isnan(y).any()) else 1
            if bad:
                raise AssertionError(f"{dtype} n={n}: {bad} wrong elements")
        details.append(f"{dtype} ok")
    drv = _driver()
    key = _context_key(drv)
    if key not in kernels._by_context:
        raise AssertionError("the module was not cached for the current context")
    kernels.unload_current()
    if key in kernels._by_context:
        raise AssertionError("unload_current left the module cached")
    details.append("module unloaded")
    return details


def check_graphs(kernels: Any, torch: Any) -> list[str]:
    from resnet_deploy.backends.tensorrt.runtime import CudaPython, GraphRunner

    cuda = CudaPython()
    cuda.set_device(torch.cuda.current_device())
    n = 1 << 20
    a = torch.randn(n, device="cuda")
    b = torch.randn(n, device="cuda")
    y = torch.empty_like(a)
    torch.cuda.synchronize()
    stream = cuda.stream_create()
    seen_capturing: list[bool] = []

    def enqueue(s: int) -> bool:
        seen_capturing.append(cuda.is_capturing(s))
        kernels.launch("float32", a.data_ptr(), b.data_ptr(), y.data_ptr(), n, s)
        return True

    details = []
    try:
        runner = GraphRunner(cuda, enabled=True)
        if runner.run(8, stream, enqueue):
            raise AssertionError("the first run should be the warm-up, not a graph launch")
        cuda.stream_sync(stream)
        if not torch.equal(y, torch.relu(a + b)) or seen_capturing != [False, True]:
            raise AssertionError(f"warm-up/capture wrong (capturing seen: {seen_capturing})")
        a.copy_(torch.randn(n, device="cuda"))  # same buffers, new data: the replay must see it
        torch.cuda.synchronize()
        if not runner.run(8, stream, enqueue):
            raise AssertionError("the second run did not launch the captured graph")
        cuda.stream_sync(stream)
        if not torch.equal(y, torch.relu(a + b)) or len(seen_capturing) != 2:
            raise AssertionError("graph replay gave a wrong result (or enqueued again)")
        details.append("captured after one warm-up enqueue, replay correct")

        def bad_enqueue(s: int) -> bool:
            if cuda.is_capturing(s):
                # A synchronize is not permitted while capturing: it invalidates the capture, as an engine whose
                # operations cannot be captured does (sampleInference.cpp: enqueue then returns False).
                r = cuda.rt.cudaStreamSynchronize(s)
                return bool(r[0] == cuda.rt.cudaError_t.cudaSuccess if isinstance(r, tuple) else r == 0)
            return enqueue(s)

        runner2 = GraphRunner(cuda, enabled=True)
        runner2.run(4, stream, bad_enqueue)
        cuda.stream_sync(stream)
        if runner2._graphs.get(4, 0) is not None or len(runner2.warnings) != 1:
            raise AssertionError(f"a failed capture should leave no graph and one warning: {runner2._graphs}")
        a.copy_(torch.randn(n, device="cuda"))
        torch.cuda.synchronize()
        if runner2.run(4, stream, bad_enqueue):
            raise AssertionError("a key whose capture failed must run plain enqueues")
        cuda.stream_sync(stream)
        if not torch.equal(y, torch.relu(a + b)):
            raise AssertionError("the fallback enqueue gave a wrong result")
        last = cuda.rt.cudaGetLastError()  # cuda-python returns (cudaError_t,)
        if (last[0] if isinstance(last, tuple) else last) != cuda.rt.cudaError_t.cudaSuccess:
            raise AssertionError(f"a CUDA error was left behind: {last}")
        details.append("failed capture falls back, no graph kept, error cleared")
        runner.close()
        runner2.close()
        details.append("graph execs destroyed")
    finally:
        cuda.stream_destroy(stream)
    return details


class _ReluEngine:
    """Stands in for bind + ``execute_async_v3``: checks TensorRT's rules on what it is given, runs y = relu(x)."""

    def __init__(self, kernels: Any, zeros: int, cols: int, min_batch: int, max_batch: int) -> None:
        self.kernels, self.zeros, self.cols = kernels, zeros, cols
        self.min_batch, self.max_batch = min_batch, max_batch

    def __call__(self, rows: int, xp: int, yp: int, stream: int) -> None:
        from resnet_deploy.backends.tensorrt.runtime import ALIGN

        if xp % ALIGN or yp % ALIGN or not self.min_batch <= rows <= self.max_batch:
            raise AssertionError(f"the engine got rows={rows} at {xp:#x}/{yp:#x}")
        self.kernels.launch("float32", xp, self.zeros, yp, rows * self.cols, stream)


def check_chunks(kernels: Any, torch: Any) -> list[str]:
    """run_chunks with the relu kernel as the 'engine' (y = relu(x + 0)); 1000-float rows = 4000 bytes."""
    from resnet_deploy.backends.tensorrt.runtime import CudaPython, plan_chunks, run_chunks

    cuda = CudaPython()
    cuda.set_device(torch.cuda.current_device())
    cols = 1000
    row = cols * 4
    zeros = torch.zeros(64 * cols, device="cuda")
    details = []
    stream = cuda.stream_create()
    stage_in, stage_out = cuda.malloc(64 * row), cuda.malloc(64 * row)
    try:
        for max_batch, min_batch, n, offset in ((6, 1, 23, 1), (8, 4, 11, 1), (32, 1, 100, 0), (8, 4, 2, 0)):
            base = torch.randn(n + offset, cols, device="cuda")
            x = base[offset:]
            out_base = torch.full((n + 1, cols), float("nan"), device="cuda")
            y = out_base[offset:] if offset else out_base[:n]
            torch.cuda.synchronize()
            plan = plan_chunks(n, max_batch, min_batch, (row, row), (x.data_ptr(), y.data_ptr()))
            engine = _ReluEngine(kernels, zeros.data_ptr(), cols, min_batch, max_batch)
            run_chunks(
                cuda,
                plan,
                (x.data_ptr(), y.data_ptr()),
                (row, row),
                (stage_in, stage_out),
                min_batch,
                stream,
                engine,
            )
            cuda.stream_sync(stream)
            if not torch.equal(y, torch.relu(x)):
                raise AssertionError(f"max {max_batch}, min {min_batch}, n {n}, offset {offset}: wrong output")
            guard = out_base[0] if offset else out_base[n]  # the row outside y stays poisoned
            if int(guard.isnan().sum()) != cols:
                raise AssertionError("a copy wrote outside the output")
            staged = sum(c.staged for c in plan)
            details.append(f"n={n} max={max_batch} min={min_batch} offset={offset}: {len(plan)} runs, {staged} staged")
    finally:
        cuda.free(stage_in)
        cuda.free(stage_out)
        cuda.stream_destroy(stream)
    return details


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    why = why_not_here()
    if why is not None:
        for part in ("plugin-launch", "graphs", "chunks"):
            print(f"SKIP {part}: {why}")
        return 0
    import torch

    from resnet_deploy.backends.tensorrt.plugin.cuda import Kernels
    from resnet_deploy.kernels import find_kernels

    torch.cuda.init()
    torch.zeros(1, device="cuda")  # makes the primary context current in this thread, for the driver API
    results = Results()
    kernels: Any = None
    try:
        kernels = Kernels(find_kernels(args.kernels_dir))
    except Exception as exc:
        print(f"FAIL kernels: {type(exc).__name__}: {exc}")
        results.parts["kernels"] = {"ok": False, "error": str(exc)}
    if kernels is not None:
        results.run("plugin-launch", lambda: check_plugin_launch(kernels, torch))
        results.run("graphs", lambda: check_graphs(kernels, torch))
        results.run("chunks", lambda: check_chunks(kernels, torch))
    report = {
        "format": "resnet-deploy-device-checks/1",
        "gpu": torch.cuda.get_device_name(0),
        "compute_capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
        "torch": torch.__version__,
        "ok": results.ok,
        "parts": results.parts,
    }
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "device_checks.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"device checks: {'all passed' if results.ok else 'FAILED'}")
    return 0 if results.ok else 1


if __name__ == "__main__":
    sys.exit(main())
