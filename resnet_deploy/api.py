"""The Python API behind every CLI command, in one place: re-exports only, the code lives in the modules named.

===================  ==============================================  ==============================
command              function                                        module
===================  ==============================================  ==============================
``models``           :func:`models_catalog`                          :mod:`resnet_deploy.models.catalog`
``export``           :func:`export_model`                            :mod:`resnet_deploy.build`
``build``            :func:`build` (:class:`BuildOptions`)           :mod:`resnet_deploy.build`
``infer``            :func:`infer`, :func:`predict`                  :mod:`resnet_deploy.infer`
``eval``             :func:`evaluate_model`, :func:`evaluate`        :mod:`resnet_deploy.evaluate`
``compare``          :func:`compare` (:class:`CompareReport`)        :mod:`resnet_deploy.compare`
``inspect``          :func:`inspect_model`                           :mod:`resnet_deploy.inspection`
``bench``            :func:`bench`, :func:`run_benchmark`            :mod:`resnet_deploy.benchmark`
``triton-repo``      :func:`triton_repo`                             :mod:`resnet_deploy.serve`
``serve``            :func:`serve`, :func:`triton_server`            :mod:`resnet_deploy.serve`
(any)                :func:`load`                                    :mod:`resnet_deploy.backends.loader`
(Python only)        :func:`compile` (an ``nn.Module``)              :mod:`resnet_deploy.build`
===================  ==============================================  ==============================
"""

from __future__ import annotations

from .backends.base import InferenceModel
from .backends.loader import load
from .benchmark import BenchConfig, BenchOutputs, BenchReport, BenchResult, bench, parse_batches, run_benchmark
from .build import BuildOptions, BuildResult, ExportResult, build, compile, export_model, export_onnx
from .compare import CompareReport, compare
from .evaluate import EvalReport, evaluate, evaluate_model
from .infer import Predictions, infer, load_images, load_npy, predict, save_npy
from .info import ModelInfo
from .inspection import format_summary, inspect_model, inspect_onnx
from .models.catalog import list_architectures, list_checkpoints, models_catalog
from .models.registry import parameter_count
from .serve import RepoResult, ServeReport, TritonServer, serve, triton_repo, triton_server

__all__ = [
    "BenchConfig",
    "BenchOutputs",
    "BenchReport",
    "BenchResult",
    "BuildOptions",
    "BuildResult",
    "CompareReport",
    "EvalReport",
    "ExportResult",
    "InferenceModel",
    "ModelInfo",
    "Predictions",
    "RepoResult",
    "ServeReport",
    "TritonServer",
    "bench",
    "build",
    "compare",
    "compile",
    "evaluate",
    "evaluate_model",
    "export_model",
    "export_onnx",
    "format_summary",
    "infer",
    "inspect_model",
    "inspect_onnx",
    "list_architectures",
    "list_checkpoints",
    "load",
    "load_images",
    "load_npy",
    "models_catalog",
    "parameter_count",
    "parse_batches",
    "predict",
    "run_benchmark",
    "save_npy",
    "serve",
    "triton_repo",
    "triton_server",
]
