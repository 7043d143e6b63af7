"""ONNX export: torchvision-format weights with non-trivial BatchNorm statistics -> checked, BN-free, dynamic-batch
ONNX whose ONNX Runtime logits equal PyTorch's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch

from resnet_deploy.api import export_model
from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel
from resnet_deploy.errors import UserError
from resnet_deploy.export import INPUT_NAME, OUTPUT_NAME
from resnet_deploy.models.weights import load_model
from resnet_deploy.onnx_io import info_from_onnx, load_onnx

RTOL_OF_MAX = 1e-4  # |ORT - PyTorch| <= 1e-4 * max |logit|


def assert_logits_match(onnx_path: Path, model: torch.nn.Module, x: np.ndarray) -> None:
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    got = OnnxRuntimeModel(onnx_path).predict(x)
    assert got.shape == expected.shape
    scale = float(np.abs(expected).max())
    err = float(np.abs(got - expected).max())
    assert err <= RTOL_OF_MAX * scale, f"max |ORT - PyTorch| = {err:.3g}, largest logit {scale:.3g}"
    assert (got.argmax(1) == expected.argmax(1)).all()


def check_exported(path: Path, n_bn: int) -> onnx.ModelProto:
    proto = load_onnx(path)  # parses and passes onnx.checker
    onnx.checker.check_model(proto, full_check=True)
    ops = [n.op_type for n in proto.graph.node]
    assert "BatchNormalization" not in ops
    assert ops.count("Conv") == n_bn  # every Conv absorbed its BatchNorm (ResNets have one per Conv)
    (inp,) = proto.graph.input
    (out,) = proto.graph.output
    assert inp.name == INPUT_NAME and out.name == OUTPUT_NAME
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    batch = inp.type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.HasField("dim_value"), "batch axis must be dynamic"
    assert proto.opset_import[0].version >= 17
    return proto


def test_bn_statistics_are_not_trivial(resnet18_onnx: Any) -> None:
    # Guard: a fresh network (mean 0, var 1, gamma 1, beta 0) would make folding trivially correct.
    bn = resnet18_onnx.model.layer3[1].bn2
    assert bn.running_mean.abs().max() > 0.1 and (bn.running_var - 1).abs().max() > 0.1
    assert (bn.weight - 1).abs().max() > 0.1 and bn.bias.abs().max() > 0.01


def test_resnet18(resnet18_onnx: Any) -> None:
    proto = check_exported(resnet18_onnx.onnx_path, n_bn=20)
    info = info_from_onnx(proto)
    assert info is not None and (info.arch, info.num_classes, info.input_size) == ("resnet18", 1000, 64)
    rng = np.random.default_rng(0)
    for batch in (3, 1, 5):  # dynamic batch: one graph, several sizes
        x = rng.standard_normal((batch, 3, 64, 64), dtype=np.float32)
        assert_logits_match(resnet18_onnx.onnx_path, resnet18_onnx.model, x)


def test_resnet50(tmp_path: Path, torchvision_weights: Callable[..., Path]) -> None:
    weights = torchvision_weights("resnet50", tmp_path / "resnet50.pth", seed=5)
    result = export_model("resnet50", weights, tmp_path / "resnet50.onnx", input_size=96)
    assert result.report("fold_batchnorm").changes == {"batchnorm_folded": 53}  # type: ignore[union-attr]
    assert result.op_counts["Conv"] == 53 and "BatchNormalization" not in result.op_counts
    check_exported(result.path, n_bn=53)
    model, _ = load_model("resnet50", weights, input_size=96)
    rng = np.random.default_rng(1)
    for batch in (3, 1):
        x = rng.standard_normal((batch, 3, 96, 96), dtype=np.float32)
        assert_logits_match(result.path, model, x)


def test_cifar_resnet_with_normalisation_inside(tmp_path: Path, randomize_bn: Callable[..., torch.nn.Module]) -> None:
    """A 1-channel resnet20 checkpoint with in-graph normalisation (the bundled Fashion-MNIST layout)."""
    from resnet_deploy.info import ModelInfo
    from resnet_deploy.models import build_model
    from resnet_deploy.models.weights import save_checkpoint

    net = randomize_bn(build_model("resnet20", 10, 1), seed=2)
    info = ModelInfo(arch="resnet20", num_classes=10, in_channels=1, input_size=28, mean=[0.29], std=[0.35])
    ckpt = save_checkpoint(tmp_path / "r20.safetensors", net, info)
    result = export_model(None, ckpt, tmp_path / "r20.onnx")  # the checkpoint names its architecture
    proto = check_exported(result.path, n_bn=19)
    got = info_from_onnx(proto)
    assert got is not None and got.mean == [0.29] and got.in_channels == 1 and got.input_size == 28
    model, _ = load_model(None, ckpt)
    x = np.random.default_rng(2).random((4, 1, 28, 28), dtype=np.float32)
    assert_logits_match(result.path, model, x)


def test_export_result_summary(resnet18_onnx: Any, tmp_path: Path) -> None:
    result = export_model("resnet20", None, tmp_path / "r20.onnx", opset=18)
    text = result.summary()
    assert "resnet20" in text and "19 BatchNormalization folded" in text and str(result.path) in text
    assert result.info.num_classes == 10  # random weights: the CIFAR family's usual head
    assert result.size_bytes == result.path.stat().st_size
    proto = load_onnx(result.path)
    assert proto.opset_import[0].version == 18
    assert not [p for p in proto.metadata_props if p.key.startswith("onnxsim.")]
    d = result.to_dict()
    assert d["passes"][1]["changes"] == {"batchnorm_folded": 19}


def test_export_refuses_bad_options_before_working(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="opset 12"):
        export_model("resnet20", None, tmp_path / "a.onnx", opset=12)
    with pytest.raises(UserError, match="folder .* does not exist"):
        export_model("resnet20", None, tmp_path / "missing" / "a.onnx")
    with pytest.raises(UserError, match="input size"):
        export_model("resnet20", None, tmp_path / "a.onnx", input_size=0)
    assert list(tmp_path.iterdir()) == []
