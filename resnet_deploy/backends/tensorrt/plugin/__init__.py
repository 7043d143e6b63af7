"""The fused residual add + ReLU plugin on the TensorRT side: registration, kernel launches, engine timing.

Importing this package needs neither TensorRT nor CUDA; the functions that do import them on first use.
"""

from .cuda import float_bits, launch_grid
from .registration import PLUGIN_ID, int8_scales, register_aot_plugin, register_python_plugin, tensorrt_available
from .timing import EngineTiming, residual_fusion_choice, time_engines

__all__ = [
    "PLUGIN_ID",
    "float_bits",
    "launch_grid",
    "EngineTiming",
    "int8_scales",
    "register_aot_plugin",
    "register_python_plugin",
    "residual_fusion_choice",
    "tensorrt_available",
    "time_engines",
]
