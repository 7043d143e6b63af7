"""``compare``: its numbers against an independent numpy computation on real Fashion-MNIST outputs (two ONNX Runtime
sessions on the FP32 and INT8 graphs of fmnist_resnet20), Polygraphy's pass rule, and ``--layers``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from resnet_deploy.backends.loader import load
from resnet_deploy.build import BuildOptions, build
from resnet_deploy.compare import EPSILON, OutputStats, compare, tensor_aliases
from resnet_deploy.data.datasets import open_dataset
from resnet_deploy.errors import UserError

LIMIT = 300


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """fmnist_resnet20 as FP32 and INT8 ONNX (ONNX Runtime's placement), calibrated on 64 training images."""
    d = tmp_path_factory.mktemp("compare")
    out = {"fp32": d / "fp32.onnx", "int8": d / "int8.onnx"}
    build(BuildOptions(output=out["fp32"], weights="fmnist_resnet20"))
    build(BuildOptions(output=out["int8"], weights="fmnist_resnet20", precision="int8", calib_samples=64))
    return out


@pytest.fixture(scope="module")
def images(graphs: dict[str, Path]) -> np.ndarray:
    with load(graphs["fp32"]) as model:
        x, _ = open_dataset("fashion-mnist:test", model.info).take(LIMIT)
    return x


def _logits(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {sess.get_inputs()[0].name: x})[0], dtype=np.float64)


def test_compare_matches_an_independent_numpy_computation(graphs: dict[str, Path], images: np.ndarray) -> None:
    a, b = _logits(graphs["int8"], images), _logits(graphs["fp32"], images)
    assert a.shape == (LIMIT, 10) and not np.array_equal(a, b)  # INT8 really differs
    atol, rtol = 0.05, 0.05
    absdiff = np.abs(a - b)
    base = np.abs(b)
    base[base == 0] = EPSILON
    reldiff = absdiff / base
    cos = np.array([np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)) for u, v in zip(a, b, strict=True)])
    top5 = np.argsort(-a, axis=1)[:, :5]
    ref1 = b.argmax(axis=1)
    mismatches = int(((absdiff > atol) & (reldiff > rtol)).sum())

    # batches of 64 over 300 images: the statistics must add up across batches, the last one short
    r = compare(graphs["int8"], graphs["fp32"], limit=LIMIT, atol=atol, rtol=rtol, batch_size=64)
    (o,) = r.outputs
    assert r.samples == LIMIT and o.count == a.size and o.samples == LIMIT
    assert o.max_abs == pytest.approx(absdiff.max(), rel=1e-6)
    assert o.mean_abs == pytest.approx(absdiff.mean(), rel=1e-6)
    assert o.max_rel == pytest.approx(reldiff.max(), rel=1e-6)
    assert o.mean_rel == pytest.approx(reldiff.mean(), rel=1e-6)
    assert o.cosine == pytest.approx(cos.mean(), rel=1e-9)
    assert o.min_cosine == pytest.approx(cos.min(), rel=1e-9)
    assert o.top1_agree == int((a.argmax(axis=1) == ref1).sum())
    assert o.top5_agree == int((top5 == ref1[:, None]).any(axis=1).sum())
    assert o.mismatches == mismatches > 0 and not r.passed
    d = r.to_dict()["outputs"][0]
    assert d["top1_agreement"] == pytest.approx(100.0 * o.top1_agree / LIMIT)


def test_the_pass_rule_is_polygraphys_elemwise_check() -> None:
    """An element fails only outside both tolerances; NaN always fails."""
    b = np.array([[1.0, 100.0, 0.0]])
    s = OutputStats("y", atol=0.5, rtol=0.01)
    s.add(np.array([[1.4, 100.9, 0.4]]), b)  # inside atol; inside rtol (0.9 % of 100); inside atol at a zero
    assert s.passed and s.mismatches == 0
    s.add(np.array([[1.6, 100.0, 0.0]]), b)  # 0.6 off: outside atol, and 60 % relative
    assert not s.passed and s.mismatches == 1
    n = OutputStats("y", atol=1e9, rtol=1e9)
    n.add(np.array([[np.nan, 1.0, 0.0]]), b)
    assert not n.passed and n.non_finite == 1


def test_identical_models_pass_with_zero_error(graphs: dict[str, Path]) -> None:
    r = compare(graphs["fp32"], graphs["fp32"], limit=64, atol=0.0, rtol=0.0, layers=True)
    (o,) = r.outputs
    assert r.passed and o.max_abs == 0.0 and o.cosine == pytest.approx(1.0)
    assert r.layers is not None and r.layers.first_error is None and r.layers.first_jump is None
    assert all(s.sqnr_db == math.inf for s in r.layers.layers)


def test_layers_sqnr_in_pipeline_order_against_an_independent_computation(
    graphs: dict[str, Path], images: np.ndarray, tmp_path: Path
) -> None:
    x = images[:64]
    plot = tmp_path / "sqnr.png"
    r = compare(graphs["int8"], graphs["fp32"], limit=64, layers=True, plot=plot, batch_size=16)
    rep = r.layers
    assert rep is not None
    names = [s.name for s in rep.layers]
    fp32 = onnx.load(str(graphs["fp32"]))
    order = [o for n in fp32.graph.node for o in n.output]
    assert names == [n for n in order if n in names]  # B's node order
    assert len(names) >= 50 and names[-1] == "logits"
    # ONNX Runtime's placement replaces each ReLU by its Q: the ReLU's value is the DequantizeLinear output
    relu = next(s for s in rep.layers if s.name == "/net/relu/Relu_output_0")
    assert relu.name_in_a == "/net/relu/Relu_output_0_dequantized_0" and relu.op == "Relu"
    # the first difference is the quantized input; the first conv adds more than 6 dB of error on top of it
    assert rep.first_error is not None and rep.first_error.name == "/normalize/Div_output_0"
    assert rep.first_jump is not None and rep.first_jump.name == "/net/bn1/BatchNormalization_output_0"

    # the same SQNR for one residual Add, computed here with numpy from graphs exposed through onnx's own API.
    # The same tensors are exposed as compare exposes: each exposed tensor stops ONNX Runtime's QLinearConv fusion
    # of its node, and with a different set the INT8 graph computes slightly different values (1e-4 dB here).
    name = "/net/layer2/layer2.1/Add_output_0"

    def value(path: Path, exposed: list[str], wanted: str) -> np.ndarray:
        m = onnx.load(str(path))
        m.graph.output.extend(onnx.ValueInfoProto(name=n) for n in exposed)
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return np.asarray(sess.run([wanted], {sess.get_inputs()[0].name: x})[0], dtype=np.float64)

    exposed_a = [s.name_in_a for s in rep.layers if s.name_in_a != "logits"]
    va = value(graphs["int8"], exposed_a, name)
    vb = value(graphs["fp32"], [s.name for s in rep.layers if s.name != "logits"], name)
    expected = 10 * math.log10(float((vb**2).sum()) / float(((va - vb) ** 2).sum()))
    got = next(s for s in rep.layers if s.name == name).sqnr_db
    assert got == pytest.approx(expected, abs=1e-9)
    assert 15 < got < 50
    assert plot.read_bytes().startswith(b"\x89PNG") and r.plot == str(plot)
    assert not list(tmp_path.glob(".*.tmp"))


def test_tensor_aliases_follow_our_qdq_names(graphs: dict[str, Path]) -> None:
    aliases = tensor_aliases(onnx.load(str(graphs["int8"])))
    assert aliases["/net/relu/Relu_output_0"] == "/net/relu/Relu_output_0_dequantized_0"
    assert aliases["/net/bn1/BatchNormalization_output_0"] == "/net/bn1/BatchNormalization_output_0"
    assert not [v for v in aliases.values() if v.endswith("_quantized") or "weight" in v]


def test_input_npy_and_checkpoints(graphs: dict[str, Path], images: np.ndarray, tmp_path: Path) -> None:
    npy = tmp_path / "x.npy"
    np.save(npy, images[:20])
    r = compare("fmnist_resnet20", graphs["fp32"], input_npy=npy, atol=1e-4, rtol=1e-4)
    assert r.samples == 20 and r.passed and r.outputs[0].top1_agree == 20


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"atol": -1.0}, "--atol"),
        ({"rtol": math.nan}, "--rtol"),
        ({"limit": 0}, "--limit"),
        ({"plot": "p.png"}, "needs --layers"),
        ({"data": "fashion-mnist:test", "input_npy": "x.npy"}, "not both"),
    ],
)
def test_bad_arguments_are_one_line(graphs: dict[str, Path], kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(UserError, match=match):
        compare(graphs["int8"], graphs["fp32"], **kwargs)  # type: ignore[arg-type]


def test_layers_need_two_onnx_graphs(graphs: dict[str, Path]) -> None:
    with pytest.raises(UserError, match="A is a checkpoint"):
        compare("fmnist_resnet20", graphs["fp32"], layers=True)
