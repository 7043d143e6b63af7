"""Calibration memory does not grow with the number of images (#12).

Each build runs in a fresh subprocess and reports its own peak RSS (``VmHWM``; not ``ru_maxrss``, which Linux
carries over from the parent, pytest here, across fork and exec): a ResNet-18 at 224 x 224
calibrated from a folder of JPEGs, on 16 and on 96 images. Before streaming, the images were loaded whole and the
batch grew with them (16 -> 32), and all of a batch's activations came back from ONNX Runtime at once: 1.23 GB at
16 images, 2.53 GB at 96 on this test (now 0.53 GB both). Memory, not time, is measured, so the test holds on a
loaded machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from resnet_deploy.build import export_onnx
from resnet_deploy.info import ModelInfo
from resnet_deploy.models import build_model
from resnet_deploy.models.weights import randomize_batchnorm

pytestmark = pytest.mark.slow

CHILD = """
import json, sys, tempfile
from resnet_deploy.build import BuildOptions, build
with tempfile.TemporaryDirectory() as d:
    r = build(BuildOptions(output=d + "/m.onnx", onnx=sys.argv[1], precision="int8", calib_data=sys.argv[2],
                           calib_samples=int(sys.argv[3])))
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"peak_kb": peak, "samples": r.int8.samples,
                  "batch": getattr(r.int8, "batch_size", None)}))
"""


@pytest.fixture(scope="module")
def model_and_images(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("memory")
    torch.manual_seed(0)
    info = ModelInfo(arch="resnet18", num_classes=10, in_channels=3, input_size=224)
    proto, _ = export_onnx(randomize_batchnorm(build_model("resnet18", 10, 3), 0).eval(), info)
    onnx.save(proto, str(root / "resnet18.onnx"))
    rng = np.random.default_rng(0)
    for i in range(96):
        folder = root / "images" / f"class{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        small = (rng.random((10, 11, 3)) * 255).astype(np.uint8)
        Image.fromarray(small).resize((320, 256), Image.Resampling.BICUBIC).save(folder / f"{i:03d}.jpg", quality=90)
    return root / "resnet18.onnx", root / "images"


def _peak(model: Path, images: Path, samples: int) -> dict[str, int]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(model), str(images), str(samples)],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_peak_memory_does_not_grow_with_the_number_of_images(model_and_images: tuple[Path, Path]) -> None:
    model, images = model_and_images
    few = _peak(model, images, 16)
    many = _peak(model, images, 96)
    assert few["samples"] == 16 and many["samples"] == 96
    print(f"peak RSS: {few['peak_kb'] / 1e6:.2f} GB at 16 images, {many['peak_kb'] / 1e6:.2f} GB at 96")
    assert many["peak_kb"] <= 1.10 * few["peak_kb"], (few, many)
