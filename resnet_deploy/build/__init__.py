"""``build``: the pipeline from a checkpoint or ONNX file to a deployable model, as named stages.

:mod:`.options` (what a build accepts, checked before any work), :mod:`.stages` (one function per stage),
:mod:`.pipeline` (the stages in order; ``export_model`` for the first ones alone), :mod:`.result` (what came out),
:mod:`.compiler` (an in-memory ``nn.Module`` to a loaded model).
"""

from .compiler import compile
from .options import BACKENDS, PRECISIONS, RESIDUAL_FUSION, BuildOptions
from .pipeline import ExportResult, build, export_model, export_onnx
from .result import BuildResult

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "RESIDUAL_FUSION",
    "BuildOptions",
    "BuildResult",
    "ExportResult",
    "build",
    "compile",
    "export_model",
    "export_onnx",
]
