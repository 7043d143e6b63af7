"""What the serve tests share: the bundled checkpoints as FP32 and INT8 ONNX, real Fashion-MNIST images, hand-written
engine sidecars, and the Triton server's Python environment (skipped with the reason where it cannot be had; a
failure in CI, where setup.sh makes it)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from resnet_deploy.errors import UserError

BUNDLED = ("fmnist_resnet20", "fmnist_resnet50_small")


@pytest.fixture(scope="session")
def server_env() -> Any:
    """The environment Triton runs from (``.venv-serve`` beside ``.venv`` after setup.sh)."""
    from resnet_deploy.serve import find_server_environment

    try:
        return find_server_environment()
    except UserError as exc:
        if os.environ.get("CI") == "true":  # setup.sh makes it: in CI the server tests must run
            pytest.fail(f"CI must run the Triton tests, but: {exc}")
        pytest.skip(f"no Triton server environment here: {exc}")


@pytest.fixture(scope="session")
def bundled_onnx(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"fmnist_resnet20_fp32": path, ..._int8, fmnist_resnet50_small_fp32, ..._int8}``: what
    ``resnet-deploy build --weights NAME --precision P`` writes for ONNX Runtime (INT8 calibrated as by default)."""
    from resnet_deploy.api import BuildOptions, build

    folder = tmp_path_factory.mktemp("bundled_onnx")
    out = {}
    for name in BUNDLED:
        for precision in ("fp32", "int8"):
            path = folder / f"{name}_{precision}.onnx"
            build(BuildOptions(output=path, weights=name, precision=precision))
            out[path.stem] = path
    return out


@pytest.fixture(scope="session")
def fmnist_images() -> np.ndarray:
    """The first 64 Fashion-MNIST test images as uint8 (N, 28, 28), as stored."""
    from resnet_deploy.data.idx import FASHION_MNIST_DIR, read_idx

    return np.ascontiguousarray(read_idx(Path(FASHION_MNIST_DIR) / "t10k-images-idx3-ubyte.gz")[:64])


def _sidecar(
    engine: bytes,
    *,
    flavour: str = "tensorrt",
    version: str = "10.13.0.35",
    profile: tuple[int, int, int] = (1, 8, 16),
    labels: list[str] | None = None,
) -> dict[str, Any]:
    """A sidecar as `resnet-deploy build --backend tensorrt` writes one, for a 1 x 28 x 28 -> 10 classifier."""
    lo, opt, hi = profile
    return {
        "format": "resnet-deploy-engine/1",
        "resnet_deploy_version": "0.1.0",
        "created": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc).isoformat(),
        "engine": {"file": "model.engine", "sha256": hashlib.sha256(engine).hexdigest(), "size": len(engine)},
        "source_onnx": {"sha256": "0" * 64, "size": 1},
        "model": {
            "arch": "resnet20",
            "name": "fmnist_resnet20",
            "num_classes": 10,
            "dataset": "fashion-mnist",
            "labels": labels,
            "top1": None,
        },  # fmt: skip
        "precision": "int8",
        "tensorrt": {"flavour": flavour, "version": version},
        "gpu": {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"} if flavour == "tensorrt" else None,
        "input": {
            "name": "input",
            "dtype": "FP32",
            "shape": [-1, 1, 28, 28],
            "min_shape": [lo, 1, 28, 28],
            "opt_shape": [opt, 1, 28, 28],
            "max_shape": [hi, 1, 28, 28],
        },  # fmt: skip
        "outputs": [{"name": "logits", "dtype": "FP32", "shape": [-1, 10]}],
        "preprocessing": {
            "layout": "NCHW",
            "input_size": 28,
            "in_channels": 1,
            "mean": [0.286],
            "std": [0.353],
            "normalization": "in_graph",
            "input_range": "[0, 1]",
        },  # fmt: skip
        "calibration": None,
        "build_options": {"min_batch": lo, "opt_batch": opt, "max_batch": hi},
        "layers": {"source": "network_definition", "count": 0, "items": []},
    }


@pytest.fixture(scope="session")
def handwritten_engine() -> Callable[..., Path]:
    """``handwritten_engine(folder, name="model.engine", **sidecar options) -> path``: bytes that stand for a plan,
    with a hand-written sidecar (sha256 matching) that claims what the options say -- full TensorRT by default."""

    def make(folder: Path, name: str = "model.engine", **options: Any) -> Path:
        engine = b"not really a TensorRT plan; the sidecar vouches for it " + name.encode()
        path = folder / name
        path.write_bytes(engine)
        path.with_name(path.name + ".json").write_text(json.dumps(_sidecar(engine, **options)))
        return path

    return make
