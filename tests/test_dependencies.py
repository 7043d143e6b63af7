"""What each entry point imports, in a fresh interpreter (after Polygraphy's ``tests/mod/test_dependencies.py``).

Running an ``.onnx`` must never pay for PyTorch, onnxsim or TensorRT: on a Jetson the start-up is paid at every
service restart. Each check runs in a subprocess so that modules earlier tests imported do not hide an import.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "torchvision", "onnxsim", "tensorrt", "tensorrt_rtx", "tensorrt_rtx_bindings", "matplotlib")


def imported_after(code: str, cwd: Path) -> list[str]:
    """Top-level package names of every module imported by ``code`` (run in a fresh interpreter)."""
    script = code + "\nimport sys, json\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    out = subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fmnist_resnet20 as ONNX (exported once, in this process: exporting needs torch)."""
    from resnet_deploy.api import export_model

    path = tmp_path_factory.mktemp("deps") / "fmnist_resnet20.onnx"
    export_model(weights="fmnist_resnet20", out=path)
    return path


def test_load_and_predict_an_onnx_imports_no_torch(onnx_file: Path, tmp_path: Path) -> None:
    code = (
        "import numpy as np, resnet_deploy\n"
        f"m = resnet_deploy.load({str(onnx_file)!r})\n"
        "assert m.predict(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)\n"
    )
    mods = imported_after(code, tmp_path)
    assert "onnxruntime" in mods  # the check sees what the code imported
    assert not [m for m in HEAVY if m in mods]


def test_importing_the_package_and_api_imports_nothing_heavy(tmp_path: Path) -> None:
    assert not [m for m in (*HEAVY, "onnxruntime", "onnx") if m in imported_after("import resnet_deploy", tmp_path)]
    assert not [m for m in HEAVY if m in imported_after("import resnet_deploy.api", tmp_path)]


def test_the_cli_parser_and_models_listing_import_no_torch(tmp_path: Path) -> None:
    code = (
        "from resnet_deploy.cli import main\nimport contextlib, io\nwith contextlib.redirect_stdout(io.StringIO()):\n"
    )
    code += "    main(['models', '--json'])\n"
    assert not [m for m in HEAVY if m in imported_after(code, tmp_path)]


def test_loading_a_checkpoint_does_import_torch(tmp_path: Path) -> None:
    """The other side of the same check: a bundled checkpoint runs in PyTorch eager, so torch must appear."""
    assert "torch" in imported_after("import resnet_deploy\nresnet_deploy.load('fmnist_resnet20')", tmp_path)


def test_running_an_onnx_on_openvino_imports_no_torch_nor_onnx(onnx_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    code = (
        "import numpy as np, resnet_deploy\n"
        f"m = resnet_deploy.load({str(onnx_file)!r}, runtime='openvino')\n"
        "assert m.predict(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)\n"
    )
    mods = imported_after(code, tmp_path)
    assert "openvino" in mods
    assert not [m for m in (*HEAVY, "onnx", "onnxruntime") if m in mods]
