"""The top-level package (``import resnet_deploy``): ``load``, ``load_images``, ``compile`` and ``predict`` as the
README's Python section uses them (issue 16)."""

from __future__ import annotations

import pydoc
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import resnet_deploy
from resnet_deploy.api import export_model
from resnet_deploy.errors import UserError


@pytest.fixture(scope="module")
def fmnist_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_model(weights="fmnist_resnet20", out=tmp_path_factory.mktemp("pkg") / "m.onnx").path


def test_help_shows_the_entry_points() -> None:
    text = pydoc.render_doc(resnet_deploy, renderer=pydoc.plaintext)
    for name in ("load(", "load_images(", "compile("):
        assert name in text, name
    assert set(resnet_deploy.__all__) >= {"load", "load_images", "compile"}


def test_import_is_light() -> None:
    heavy = "('torch', 'onnx', 'onnxruntime', 'numpy')"
    code = f"import sys, resnet_deploy; print(sorted(m for m in {heavy} if m in sys.modules))"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )


def test_load_a_bundled_name(fmnist_onnx: Path) -> None:
    x = np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32)
    model = resnet_deploy.load("fmnist_resnet20")
    assert model.info is not None and model.info.name == "fmnist_resnet20" and model.info.labels
    np.testing.assert_allclose(model.predict(x), resnet_deploy.load(fmnist_onnx).predict(x), rtol=1e-4, atol=1e-4)


def test_predict_takes_one_image_float64_and_torch(fmnist_onnx: Path) -> None:
    import torch

    model = resnet_deploy.load(fmnist_onnx)
    x = np.random.default_rng(1).random((3, 1, 28, 28), dtype=np.float32)
    batch = model.predict(x)
    np.testing.assert_array_equal(model.predict(x[0]), batch[:1])  # (C, H, W): a batch of one
    np.testing.assert_array_equal(model.predict(x.astype(np.float64)), batch)  # converted to float32 first
    np.testing.assert_array_equal(model.predict(torch.from_numpy(x)), batch)
    np.testing.assert_array_equal(model.predict(torch.from_numpy(x[1]).double()), batch[1:2])
    probs, idx = model.topk(x[0], k=3)
    assert probs.shape == idx.shape == (1, 3) and idx[0, 0] == batch[0].argmax()
    with pytest.raises(UserError, match="not uint8: decode image files with resnet_deploy.load_images"):
        model.predict((x * 255).astype(np.uint8))
    with pytest.raises(UserError, match=r"shape \(28, 28\)"):
        model.predict(x[0, 0])


def test_unknown_providers_are_refused(fmnist_onnx: Path) -> None:
    with pytest.raises(UserError, match="provider NoSuchExecutionProvider is unknown to ONNX Runtime"):
        resnet_deploy.load(fmnist_onnx, providers=["NoSuchExecutionProvider"])
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(UserError, match="CUDAExecutionProvider is not built in"):
            resnet_deploy.load(fmnist_onnx, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    model = resnet_deploy.load(fmnist_onnx, providers="CPUExecutionProvider")
    assert model.session.get_providers() == ["CPUExecutionProvider"]  # type: ignore[attr-defined]


def test_load_images_is_what_infer_uses(fmnist_onnx: Path, tmp_path: Path) -> None:
    from PIL import Image

    from resnet_deploy.api import infer

    pixels = np.random.default_rng(2).integers(0, 256, (2, 28, 28), dtype=np.uint8)
    paths = []
    for i, p in enumerate(pixels):
        Image.fromarray(p).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    model = resnet_deploy.load(fmnist_onnx)
    batch = resnet_deploy.load_images(paths, model)
    assert batch.shape == (2, 1, 28, 28) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[:, 0], pixels / np.float32(255))  # the graph normalises: [0, 1] in
    np.testing.assert_array_equal(model.predict(batch), infer(fmnist_onnx, images=paths).logits)
