"""``infer`` as a library: one call from a model and inputs to labelled top-k predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from resnet_deploy.api import infer, load, load_npy, predict
from resnet_deploy.errors import UserError


def test_predict_on_a_bundled_checkpoint_labels_its_classes(tmp_path: Path) -> None:
    model = load("fmnist_resnet20")
    x = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
    preds = predict(model, x, top_k=3)
    assert preds.indices.shape == (2, 3) and preds.labels is not None and len(preds.labels) == 10
    assert (preds.probs.sum(axis=1) <= 1.0 + 1e-6).all() and (np.diff(preds.probs, axis=1) <= 0).all()
    np.save(tmp_path / "x.npy", x)
    saved = infer("fmnist_resnet20", npy=tmp_path / "x.npy", save_logits=tmp_path / "logits.npy")
    np.testing.assert_allclose(np.load(tmp_path / "logits.npy"), saved.logits)
    assert saved.sources == ["x.npy[0]", "x.npy[1]"]


def test_inputs_are_checked_before_the_model_loads(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="either an .npy input or image files"):
        infer("fmnist_resnet20")
    np.save(tmp_path / "ints.npy", np.zeros((1, 1, 28, 28), np.int64))
    with pytest.raises(UserError, match="expected floats"):
        load_npy(tmp_path / "ints.npy")


def test_predict_runs_large_inputs_in_batches(tmp_path: Path) -> None:
    from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel

    seen: list[int] = []

    class Recording(OnnxRuntimeModel):
        def _run(self, batch: np.ndarray) -> np.ndarray:
            seen.append(batch.shape[0])
            return super()._run(batch)

    model = load("fmnist_resnet20")
    onnx_path = tmp_path / "m.onnx"
    from resnet_deploy.api import export_model

    export_model(None, "fmnist_resnet20", onnx_path)
    x = np.random.default_rng(0).random((1000, 1, 28, 28), dtype=np.float32)
    with Recording(onnx_path) as m:
        batched = predict(m, x, batch_size=96)
        assert seen == [96] * 10 + [40]
        done: list[tuple[int, int]] = []
        predict(m, x[:250], batch_size=96, progress=lambda d, t: done.append((d, t)))
        assert done == [(96, 250), (192, 250), (250, 250)]  # after each batch, the last one partial
        whole = predict(m, x, batch_size=1000)
    np.testing.assert_allclose(batched.logits, whole.logits, rtol=1e-5, atol=1e-5)
    with pytest.raises(UserError, match="--batch-size must be at least 1"):
        predict(model, x, batch_size=0)
