"""The streaming calibrator: ONNX Runtime's in-graph bins equal numpy's, bit for bit; the data digest does not depend on
batching; static batch axes; non-finite activations; progress; the batch chosen from the memory budget."""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from resnet_deploy.errors import UserError
from resnet_deploy.passes.graph import name_nodes
from resnet_deploy.precision.calibration import (
    MAX_BATCH,
    CalibrationData,
    DataDigest,
    auto_batch,
    batches_of,
    calibrate,
    values_per_image,
    with_outputs,
)
from resnet_deploy.precision.histogram import TensorStats
from resnet_deploy.precision.placement import plan_placements
from resnet_deploy.precision.ptq import calibration_tensors


def _tensors(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    named = name_nodes(model)
    return named, calibration_tensors(plan_placements(named).values())


def _numpy_reference(model: onnx.ModelProto, tensors: list[str], batches: list[np.ndarray]) -> dict[str, TensorStats]:
    """The statistics as numpy computes them from the activations themselves (the pre-streaming calibrator)."""
    sess = ort.InferenceSession(with_outputs(model, tensors).SerializeToString(), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    stats = {t: TensorStats() for t in tensors}
    for x in batches:
        for t, v in zip(tensors, sess.run(tensors, {name: x}), strict=True):
            stats[t].update(v)
    return stats


def test_in_graph_bins_equal_numpy_bit_for_bit(resnet20_fp32: onnx.ModelProto) -> None:
    """Same histograms, maxima and counts, with ranges that widen (later batches brighter) and a first batch of
    zeros (every post-ReLU tensor then starts on the zero-range special case)."""
    named, tensors = _tensors(resnet20_fp32)
    rng = np.random.default_rng(0)
    batches = [np.zeros((3, 1, 28, 28), np.float32)]
    batches += [rng.random((5, 1, 28, 28), dtype=np.float32) * k for k in (0.5, 1.0, 3.0, 2.0)]
    want = _numpy_reference(named, tensors, batches)
    got = calibrate(named, tensors, iter(batches)).stats
    assert set(got) == set(want)
    for t in tensors:
        assert got[t].amax == want[t].amax and got[t].hist_max == want[t].hist_max, t
        assert got[t].count == want[t].count, t
        np.testing.assert_array_equal(got[t].hist, want[t].hist, err_msg=t)


def test_stream_gives_the_same_statistics_as_an_array(resnet20_fp32: onnx.ModelProto) -> None:
    named, tensors = _tensors(resnet20_fp32)
    x = np.random.default_rng(1).random((40, 1, 28, 28), dtype=np.float32)
    a = calibrate(named, tensors, batches_of(x, 16))
    b = calibrate(named, tensors, CalibrationData.from_array(x), batch_size=16)
    assert b.samples == 40 and b.batch_size == 16
    for t in tensors:
        np.testing.assert_array_equal(a.stats[t].hist, b.stats[t].hist)
    assert b.fp32_top1 is not None and len(b.fp32_top1) == 40
    logits = ort.InferenceSession(named.SerializeToString()).run(None, {named.graph.input[0].name: x})[0]
    np.testing.assert_array_equal(b.fp32_top1, logits.argmax(axis=1))
    assert set(b.seconds) >= {"data", "run", "count", "all"}


def test_data_digest_is_the_whole_array_hash_whatever_the_batching() -> None:
    x = np.random.default_rng(2).random((13, 3, 4, 5), dtype=np.float32)
    whole = hashlib.sha256(f"{x.dtype.str}{x.shape}".encode() + x.tobytes()).hexdigest()
    data = CalibrationData.from_array(x)
    assert data.fingerprint(1) == data.fingerprint(5) == data.fingerprint(64) == whole
    digest = DataDigest(13, (3, 4, 5))
    for part in np.array_split(x, 4):
        digest.update(part.astype(np.float64))  # hashed as float32, as calibration sees it
    assert digest.hexdigest() == whole


def _static(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    fixed = onnx.ModelProto.FromString(model.SerializeToString())
    for v in (fixed.graph.input[0], fixed.graph.output[0]):
        dim = v.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_value = batch
    return fixed


def test_static_batch_is_calibrated_at_its_own_size(resnet20_fp32: onnx.ModelProto) -> None:
    named, tensors = _tensors(_static(resnet20_fp32, 4))
    x = np.random.default_rng(3).random((10, 1, 28, 28), dtype=np.float32)
    result = calibrate(named, tensors, CalibrationData.from_array(x), batch_size=3)
    assert result.batch_size == 4 and result.samples == 8
    assert any("the last 2 calibration images are not used" in n for n in result.notes)
    assert any("calibrated 4 at a time, not 3" in n for n in result.notes)
    with pytest.raises(UserError, match="takes batches of exactly 4 images; calibration has only 3"):
        calibrate(named, tensors, CalibrationData.from_array(x[:3]))


def test_non_finite_activations_name_the_tensor(resnet20_fp32: onnx.ModelProto) -> None:
    named, tensors = _tensors(resnet20_fp32)
    broken = onnx.ModelProto.FromString(named.SerializeToString())
    conv = next(n for n in broken.graph.node if n.op_type == "Conv")
    for i, t in enumerate(broken.graph.initializer):
        if t.name == conv.input[1]:
            w = numpy_helper.to_array(t).copy()
            w.flat[0] = np.nan
            broken.graph.initializer[i].CopyFrom(numpy_helper.from_array(w, t.name))
    x = np.random.default_rng(4).random((4, 1, 28, 28), dtype=np.float32)
    with pytest.raises(UserError, match="non-finite activations .* at tensor '"):
        calibrate(broken, tensors, CalibrationData.from_array(x))


def test_progress_reports_every_batch(resnet20_fp32: onnx.ModelProto) -> None:
    named, tensors = _tensors(resnet20_fp32)
    seen: list[tuple[int, int]] = []
    x = np.random.default_rng(5).random((11, 1, 28, 28), dtype=np.float32)
    calibrate(named, tensors, CalibrationData.from_array(x), batch_size=4, on_progress=lambda d, t: seen.append((d, t)))
    assert seen == [(4, 11), (8, 11), (11, 11)]


def test_batch_from_the_memory_budget(resnet20_fp32: onnx.ModelProto, resnet18_fp32: onnx.ModelProto) -> None:
    named, tensors = _tensors(resnet20_fp32)
    per_image = values_per_image(named, tensors)
    assert per_image is not None and 100_000 < per_image < 400_000
    assert auto_batch(per_image) == MAX_BATCH  # the bundled-size models keep batch 32 (and their INT8 graphs)
    assert auto_batch(17_000_000) == 1  # ResNet-50 at 224: 17 M values per image
    assert auto_batch(3_600_000) == 4  # ResNet-18 at 224
    assert auto_batch(None) == 1
    named18, tensors18 = _tensors(resnet18_fp32)
    assert values_per_image(named18, tensors18) is not None


def test_zero_images_and_wrong_shapes(resnet20_fp32: onnx.ModelProto) -> None:
    named, tensors = _tensors(resnet20_fp32)
    with pytest.raises(UserError, match="zero samples"):
        CalibrationData.from_array(np.zeros((0, 1, 28, 28), np.float32))
    with pytest.raises(UserError, match=r"images of shape \(3, 28, 28\)"):
        calibrate(named, tensors, CalibrationData.from_array(np.zeros((2, 3, 28, 28), np.float32)))
    with pytest.raises(UserError, match="zero samples"):
        calibrate(named, tensors, iter([]))
