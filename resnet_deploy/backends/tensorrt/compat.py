"""One place that knows which TensorRT is installed and how its versions differ.

Imports ``tensorrt`` (10.3+, 11.x) or, failing that, TensorRT for RTX (``tensorrt_rtx_bindings``, also accepted as
``tensorrt_rtx``). Everything else uses :data:`trt`, a lazy proxy: importing resnet_deploy never imports TensorRT,
and the first attribute access does. For mypy, :data:`trt` *is* the ``tensorrt`` module (checked against
``tensorrt-stubs``), so misspelled classes, methods and enum members are caught in code no machine here can run.

Rules kept here: enum members are looked up by name, never by integer value (values moved between 10.x and 11.x,
e.g. ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` is 1 in 10.x and 0 in 11.x); members that exist only in some
versions (``BuilderFlag.VERSION_COMPATIBLE``, ``HardwareCompatibilityLevel``) are reached through :func:`member`.
"""

from __future__ import annotations

import functools
import importlib
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ...errors import UserError

__all__ = [
    "FLAVOURS",
    "GpuInfo",
    "TrtInfo",
    "available",
    "cuda_api",
    "dims_list",
    "numpy_dtype",
    "gpu",
    "gpu_runtime_status",
    "gpu_runtime_usable",
    "has_member",
    "hardware_compat_levels",
    "info",
    "member",
    "module",
    "strongly_typed_flags",
    "supported_compute_capabilities",
    "supports_version_compatible",
    "trt",
]

# Tried in order. A bare ``tensorrt`` directory holding only ``__init__.pyi`` (what ``tensorrt-stubs`` installs)
# imports as an empty namespace package, so a candidate counts only when it has a ``Builder``.
_CANDIDATES: tuple[tuple[str, str], ...] = (
    ("tensorrt", "tensorrt"),
    ("tensorrt_rtx_bindings", "tensorrt_rtx"),
    ("tensorrt_rtx", "tensorrt_rtx"),
)
FLAVOURS = ("tensorrt", "tensorrt_rtx")

# Compute capabilities TensorRT-RTX runs on (its docs); used only when the module does not list them itself.
_RTX_FALLBACK_CCS = ((7, 5), (8, 0), (8, 6), (8, 9), (12, 0), (12, 1))


@dataclass(frozen=True)
class TrtInfo:
    """Which TensorRT was imported."""

    flavour: str  # "tensorrt" | "tensorrt_rtx"
    version: str  # the module's __version__, e.g. "10.13.0.35" or "1.7.1.116"
    module_name: str

    @property
    def major(self) -> int:
        try:
            return int(self.version.split(".")[0])
        except ValueError:
            return -1

    def describe(self) -> str:
        name = "TensorRT" if self.flavour == "tensorrt" else "TensorRT-RTX"
        return f"{name} {self.version}"


_lock = threading.Lock()
_loaded: tuple[ModuleType, TrtInfo] | None = None
_import_errors: list[str] = []


def _try_import() -> tuple[ModuleType, TrtInfo] | None:
    _import_errors.clear()
    for module_name, flavour in _CANDIDATES:
        try:
            mod = importlib.import_module(module_name)
        except Exception as exc:  # a present but broken install (missing libnvinfer) raises ImportError/OSError
            if not isinstance(exc, ModuleNotFoundError) or exc.name != module_name:
                _import_errors.append(f"{module_name}: {exc}")
            continue
        if not hasattr(mod, "Builder") or not hasattr(mod, "Runtime"):
            continue  # stubs-only namespace package, or an unrelated module of that name
        version = str(getattr(mod, "__version__", "unknown"))
        return mod, TrtInfo(flavour=flavour, version=version, module_name=module_name)
    return None


def _ensure() -> tuple[ModuleType, TrtInfo] | None:
    global _loaded
    with _lock:
        if _loaded is None:
            _loaded = _try_import()
        return _loaded


def available() -> TrtInfo | None:
    """The installed TensorRT flavour and version, or None when neither TensorRT nor TensorRT-RTX imports."""
    found = _ensure()
    return found[1] if found else None


def info() -> TrtInfo:
    """Like :func:`available` but raises a :class:`UserError` that says what to install."""
    found = _ensure()
    if found is None:
        detail = f" ({'; '.join(_import_errors)})" if _import_errors else ""
        raise UserError(
            "TensorRT is not installed: install `tensorrt` (10.3+) on a machine with an NVIDIA GPU, or "
            "`tensorrt-rtx-cu13-bindings` + `tensorrt-rtx-cu13-libs` to build engines without one" + detail
        )
    return found[1]


def module() -> ModuleType:
    """The imported TensorRT module (raises :class:`UserError` when none is installed)."""
    info()
    found = _ensure()
    assert found is not None
    return found[0]


class _LazyTrt:
    """Attribute access goes to the TensorRT module, imported on first use."""

    def __getattr__(self, name: str) -> Any:
        return getattr(module(), name)

    def __repr__(self) -> str:
        found = available()
        return f"<lazy TensorRT: {found.describe() if found else 'not installed'}>"


if TYPE_CHECKING:
    import tensorrt as trt  # checked against tensorrt-stubs; the proxy below is what runs
else:
    trt = _LazyTrt()


def member(enum_name: str, member_name: str) -> Any | None:
    """``trt.<enum_name>.<member_name>`` when this TensorRT has it, else None (never an integer guess)."""
    enum = getattr(module(), enum_name, None)
    if enum is None:
        return None
    members = getattr(enum, "__members__", None)
    if isinstance(members, dict):
        return members.get(member_name)
    return getattr(enum, member_name, None)


def has_member(enum_name: str, member_name: str) -> bool:
    return member(enum_name, member_name) is not None


def strongly_typed_flags() -> int:
    """Network-creation flags for a strongly typed network, built from the enum by name (10.x: 1, 11.x: 0)."""
    flag = member("NetworkDefinitionCreationFlag", "STRONGLY_TYPED")
    if flag is None:
        # A TensorRT without the flag is strongly typed by construction (11.x may drop it); nothing to set.
        return 0
    return 1 << int(flag)


def dims_list(dims: Any) -> list[int]:
    """A ``trt.Dims`` as a list of ints (by index: the stubs' ``Dims`` declares no ``__iter__``)."""
    return [int(dims[i]) for i in range(len(dims))]


_NP_DTYPES = {
    "FLOAT": "float32",
    "HALF": "float16",
    "INT8": "int8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
    "UINT8": "uint8",
}


def numpy_dtype(trt_dtype: Any) -> Any:
    """The numpy dtype of a ``trt.DataType``, by member name (``trt.nptype`` is untyped and rejects BF16/FP8)."""
    import numpy as np

    name = str(getattr(trt_dtype, "name", trt_dtype)).rsplit(".", 1)[-1]
    if name not in _NP_DTYPES:
        raise UserError(f"TensorRT tensor type {name} has no numpy equivalent")
    return np.dtype(_NP_DTYPES[name])


def hardware_compat_levels() -> list[str]:
    """Names of ``HardwareCompatibilityLevel`` members this TensorRT has (empty when it has none)."""
    enum = getattr(module(), "HardwareCompatibilityLevel", None)
    members = getattr(enum, "__members__", None) if enum is not None else None
    return [str(k) for k in members] if isinstance(members, dict) else []


def supports_version_compatible() -> bool:
    return has_member("BuilderFlag", "VERSION_COMPATIBLE")


def supported_compute_capabilities() -> list[tuple[int, int]] | None:
    """Compute capabilities the installed flavour can run engines on; None = any (full TensorRT decides itself)."""
    found = available()
    if found is None or found.flavour != "tensorrt_rtx":
        return None
    enum = getattr(module(), "ComputeCapability", None)
    members = getattr(enum, "__members__", None) if enum is not None else None
    ccs: list[tuple[int, int]] = []
    if isinstance(members, dict):
        for name in members:
            if name.startswith("SM") and name[2:].isdigit():
                digits = name[2:]
                ccs.append((int(digits[:-1]), int(digits[-1])))
    return ccs or list(_RTX_FALLBACK_CCS)


# --------------------------------------------------------------------------------------------------------------
# The GPU: found without TensorRT (cuda-python, else PyCUDA, else torch), so it works wherever no GPU exists too.


@dataclass(frozen=True)
class GpuInfo:
    """The CUDA device a runtime would use."""

    name: str
    compute_capability: tuple[int, int]
    total_memory: int | None
    via: str  # "cuda-python" | "pycuda" | "torch"

    @property
    def cc_str(self) -> str:
        return f"{self.compute_capability[0]}.{self.compute_capability[1]}"


def _gpu_via_cuda_python(device: int) -> GpuInfo | None:
    try:
        from cuda.bindings import runtime as cudart  # type: ignore[import-not-found,unused-ignore]
    except Exception:
        try:
            from cuda import cudart  # type: ignore[import-not-found,no-redef,unused-ignore]  # cuda-python < 12.6
        except Exception:
            return None
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0 or count <= device:
        return None
    err, props = cudart.cudaGetDeviceProperties(device)
    if int(err) != 0:
        return None
    raw = props.name
    name = raw.split(b"\0", 1)[0].decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    return GpuInfo(name, (int(props.major), int(props.minor)), int(props.totalGlobalMem), "cuda-python")


def _gpu_via_pycuda(device: int) -> GpuInfo | None:
    try:
        import pycuda.driver as cuda  # type: ignore[import-not-found,unused-ignore]
    except Exception:
        return None
    try:
        cuda.init()
        if cuda.Device.count() <= device:
            return None
        dev = cuda.Device(device)
        major, minor = dev.compute_capability()
        return GpuInfo(str(dev.name()), (int(major), int(minor)), int(dev.total_memory()), "pycuda")
    except Exception:
        return None


def _gpu_via_torch(device: int) -> GpuInfo | None:
    try:
        import torch
    except Exception:
        return None
    if not torch.cuda.is_available() or torch.cuda.device_count() <= device:
        return None
    props = torch.cuda.get_device_properties(device)
    return GpuInfo(str(props.name), (int(props.major), int(props.minor)), int(props.total_memory), "torch")


@functools.lru_cache(maxsize=8)
def gpu(device: int = 0) -> GpuInfo | None:
    """The CUDA device ``device``, or None when there is no usable NVIDIA GPU (or nothing to ask about it)."""
    for probe in (_gpu_via_cuda_python, _gpu_via_pycuda, _gpu_via_torch):
        try:
            found = probe(device)
        except Exception:  # a driver/runtime mismatch must read as "no GPU", not crash an import
            found = None
        if found is not None:
            return found
    return None


def cuda_api() -> str | None:
    """Which CUDA host API the runtime will use for memory and streams: "cuda-python", "pycuda" or None."""
    try:
        from cuda.bindings import runtime as _  # type: ignore[import-not-found,unused-ignore]  # noqa: F401

        return "cuda-python"
    except Exception:
        pass
    try:
        from cuda import cudart as _c  # type: ignore[import-not-found,no-redef,unused-ignore]  # noqa: F401

        return "cuda-python"
    except Exception:
        pass
    try:
        import pycuda.driver as _d  # type: ignore[import-not-found,unused-ignore]  # noqa: F401

        return "pycuda"
    except Exception:
        return None


def gpu_runtime_status(device: int = 0) -> tuple[bool, str]:
    """Whether TensorRT engines can be *run* here, and if not, why (one line)."""
    found = available()
    if found is None:
        return False, "no TensorRT runtime is installed (neither `tensorrt` nor TensorRT-RTX)"
    dev = gpu(device)
    if dev is None:
        return False, f"{found.describe()} is installed but no NVIDIA GPU is usable here"
    ccs = supported_compute_capabilities()
    if ccs is not None and dev.compute_capability not in ccs:
        listed = ", ".join(f"{a}.{b}" for a, b in ccs)
        return False, (
            f"{found.describe()} does not run on {dev.name} (compute capability {dev.cc_str}; it supports {listed})"
        )
    if cuda_api() is None:
        return False, "no CUDA host API for device memory and streams: install `cuda-python` (or PyCUDA)"
    return True, f"{found.describe()} on {dev.name} (compute capability {dev.cc_str})"


def gpu_runtime_usable(device: int = 0) -> bool:
    return gpu_runtime_status(device)[0]


def _reset_for_tests() -> None:
    """Forget the import result and the GPU probe (tests that change the environment)."""
    global _loaded
    with _lock:
        _loaded = None
    gpu.cache_clear()
