"""The fused residual add + ReLU plugin on the TensorRT side: registration, kernel launches, engine timing.

Importing this package needs neither TensorRT nor CUDA; the functions that do import them on first use.
"""

from .cuda import float_bits, launch_grid
from .registration import (
    PLUGIN_ID,
    PLUGIN_IMPLS,
    SerializedFields,
    aot_available,
    int8_scales,
    plugin_impl,
    read_float_fields,
    refuse_tensorrt_rtx_plugins,
    register_aot_plugin,
    register_plugin,
    register_python_plugin,
    tensorrt_available,
    unload_kernels,
)
from .timing import EngineTiming, residual_fusion_choice, time_engines

__all__ = [
    "PLUGIN_ID",
    "PLUGIN_IMPLS",
    "EngineTiming",
    "SerializedFields",
    "aot_available",
    "float_bits",
    "int8_scales",
    "launch_grid",
    "plugin_impl",
    "read_float_fields",
    "refuse_tensorrt_rtx_plugins",
    "register_aot_plugin",
    "register_plugin",
    "register_python_plugin",
    "residual_fusion_choice",
    "tensorrt_available",
    "time_engines",
    "unload_kernels",
]
