"""CUDA driver calls the plugin makes through cuda-python: load our PTX once per context, launch a kernel.

Follows NVIDIA's ``samples/python/python_plugin`` (``cuLaunchKernel`` with ``kernelParams`` as an array of pointers
to each argument's value). Pure helpers (:func:`float_bits`, :func:`launch_grid`) are tested on the CPU; the rest
needs a GPU.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from ....errors import UserError
from ....kernels import BLOCK_SIZE, KERNEL_NAMES, VECTOR_ELEMS, KernelArtifacts
from ....passes.residual_fusion import PLUGIN_NAME


def float_bits(value: float) -> int:
    """The int32 whose bits are the float32 ``value``: how the INT8 kernel receives its scales."""
    return int(struct.unpack("<i", struct.pack("<f", value))[0])


def launch_grid(n: int, dtype: str) -> int:
    """Blocks of :data:`BLOCK_SIZE` threads covering ``n`` elements once, one 16-byte vector per thread."""
    per_block = BLOCK_SIZE * VECTOR_ELEMS[dtype]
    return max(1, -(-n // per_block))


def _driver() -> Any:
    try:
        from cuda.bindings import driver  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cuda as driver  # older cuda-python layout used by TensorRT 10.x samples
        except ImportError:
            raise UserError("cuda-python is not installed (pip install cuda-python)") from None
    return driver


def _check(result: tuple[Any, ...]) -> Any:
    """Unwrap a cuda-python ``(CUresult, value...)`` tuple, raising on error."""
    drv = _driver()
    err, *values = result
    if err != drv.CUresult.CUDA_SUCCESS:
        raise RuntimeError(f"CUDA driver error {getattr(err, 'name', err)}")
    return values[0] if len(values) == 1 else tuple(values) if values else None


def _context_key(drv: Any) -> tuple[int, int]:
    """(handle, id) of the current context: the id (``cuCtxGetId``, CUDA 12.0+) is never reused, so a module
    cached for a released context is not taken for a new context that got the same handle."""
    ctx = _check(drv.cuCtxGetCurrent())
    handle = int(ctx)
    if handle == 0:
        raise RuntimeError(f"{PLUGIN_NAME}: no current CUDA context to launch in")
    ctx_id = int(_check(drv.cuCtxGetId(ctx))) if hasattr(drv, "cuCtxGetId") else 0
    return handle, ctx_id


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


class Kernels:
    """The PTX module JIT-loaded once per CUDA context, with one function handle per dtype; modules are unloaded
    with :meth:`unload_current` before their context goes (``cuModuleUnload``)."""

    def __init__(self, artifacts: KernelArtifacts) -> None:
        self.artifacts = artifacts
        self._by_context: dict[tuple[int, int], tuple[Any, dict[str, Any]]] = {}

    def function(self, dtype: str) -> Any:
        drv = _driver()
        key = _context_key(drv)
        entry = self._by_context.get(key)
        if entry is None:
            _, ptx = self.artifacts.ptx_for(current_compute_capability())
            module = _check(drv.cuModuleLoadData(ptx.read_bytes() + b"\0"))  # the JIT wants NUL-terminated PTX
            funcs = {k: _check(drv.cuModuleGetFunction(module, name.encode())) for k, name in KERNEL_NAMES.items()}
            entry = self._by_context[key] = (module, funcs)
        return entry[1][dtype]

    def unload_current(self) -> None:
        """Unload the module loaded in the current context, if any."""
        drv = _driver()
        try:
            key = _context_key(drv)
        except RuntimeError:
            return
        entry = self._by_context.pop(key, None)
        if entry is not None:
            _check(drv.cuModuleUnload(entry[0]))

    def launch(
        self, dtype: str, a: int, b: int, y: int, n: int, stream: int, scales: tuple[float, float, float] | None = None
    ) -> None:
        """Enqueue y = relu(a + b) over ``n`` elements; arguments in the entry point's order (inputs, ints, out)."""
        drv = _driver()
        if n > 2**31 - 1:
            raise RuntimeError(f"{PLUGIN_NAME}: {n} elements exceed the kernels' int32 count")
        args: list[np.ndarray] = [np.array([a], np.uint64), np.array([b], np.uint64), np.array([n], np.int32)]
        if dtype == "int8":
            if scales is None:
                raise RuntimeError(f"{PLUGIN_NAME}: INT8 I/O without scales")
            args += [np.array([float_bits(s)], np.int32) for s in scales]
        args.append(np.array([y], np.uint64))
        params = np.array([arg.ctypes.data for arg in args], dtype=np.uint64)
        grid = launch_grid(n, dtype)
        # As NVIDIA's python_plugin sample: kernelParams is an array of pointers to each argument's value (passed
        # through the buffer protocol: cuda-python's _HelperKernelParams); `args` stays alive until the call returns.
        func = self.function(dtype)
        _check(drv.cuLaunchKernel(func, grid, 1, 1, BLOCK_SIZE, 1, 1, 0, drv.CUstream(stream), params, 0))
