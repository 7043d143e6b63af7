"""Scale-out: Triton Inference Server model repositories (``triton-repo``) and a local Triton server (``serve``).

:func:`triton_repo` writes NVIDIA's repository layout from ``.onnx`` files and engines; :func:`serve` and
:func:`triton_server` run the ``nvidia-pytriton`` wheel's ``tritonserver`` on such a repository, with python-based
backends for the ONNX Runtime and TensorRT platforms (:mod:`.triton`). Importing this package imports neither
``tritonclient`` nor ONNX: each is imported when first needed.
"""

from __future__ import annotations

from .environment import ServerEnvironment, find_server_environment
from .repository import DEFAULT_QUEUE_DELAY_US, RepoModel, RepoResult, triton_repo
from .server import Endpoints, ServeReport, TritonServer, free_port, serve, triton_server

__all__ = [
    "DEFAULT_QUEUE_DELAY_US",
    "Endpoints",
    "RepoModel",
    "RepoResult",
    "ServeReport",
    "ServerEnvironment",
    "TritonServer",
    "find_server_environment",
    "free_port",
    "serve",
    "triton_repo",
    "triton_server",
]
