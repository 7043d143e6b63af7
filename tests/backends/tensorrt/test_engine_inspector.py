"""Engine inspection: what the build captured, and TensorRT's inspector JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from resnet_deploy.backends.tensorrt import compat
from resnet_deploy.backends.tensorrt.engine_inspector import (
    format_engine_summary,
    inspect_engine,
    layers_from_inspector_json,
    summarize_layers,
)
from resnet_deploy.errors import UserError

needs_trt = pytest.mark.skipif(compat.available() is None, reason="neither TensorRT nor TensorRT-RTX is installed")


@needs_trt
def test_inspect_shows_what_the_build_captured(
    built: tuple[Path, bytes, bytes], tmp_path: Path, copy_engine: Any
) -> None:
    path = copy_engine(built, tmp_path)
    info = inspect_engine(path)
    assert info["integrity"] == "ok"
    summary = info["summary"]
    if not compat.gpu_runtime_usable():
        assert summary["source"] == "network_definition" and summary["fused_count"] is None
        assert info["layers_origin"].startswith("sidecar")
    assert summary["by_type"]["CONVOLUTION"] == 1 and summary["layer_count"] == len(info["layers"])
    text = format_engine_summary(info, max_layers=50)
    assert "profile min (1, 3, 8, 8) opt (4, 3, 8, 8) max (4, 3, 8, 8)" in text
    assert "CONVOLUTION" in text and "output      logits FP32 (N, 4)" in text


# A hand-written sample in the format TensorRT documents for IEngineInspector JSON with DETAILED verbosity
# (field names as NVIDIA's trt-engine-explorer parses them); it tests our parser, not TensorRT.
INSPECTOR_SAMPLE = {
    "Layers": [
        {
            "Name": "/conv1/Conv + /relu/Relu",
            "LayerType": "CaskConvolution",
            "ParameterType": "Convolution",
            "Inputs": [{"Name": "input", "Dimensions": [1, 3, 8, 8], "Format/Datatype": "Row major linear FP32"}],
            "Outputs": [{"Name": "r", "Dimensions": [1, 4, 8, 8], "Format/Datatype": "Channel major FP16 format"}],
            "Metadata": "[ONNX Layer: /conv1/Conv]\x1e[ONNX Layer: /relu/Relu]",
            "TacticName": "sm80_xmma_fprop_implicit_gemm",
        },
        {
            "Name": "/gap/GlobalAveragePool",
            "LayerType": "CaskPooling",
            "ParameterType": "Pooling",
            "Inputs": [{"Name": "r", "Dimensions": [1, 4, 8, 8], "Format/Datatype": "Channel major FP16 format"}],
            "Outputs": [{"Name": "g", "Dimensions": [1, 4, 1, 1], "Format/Datatype": "Row major linear FP32"}],
            "Metadata": "[ONNX Layer: /gap/GlobalAveragePool]",
        },
        "reformatting_layer_names_only",
    ],
    "Bindings": ["input", "logits"],
}


def test_inspector_json_parsing_and_summary() -> None:
    layers = layers_from_inspector_json(json.dumps(INSPECTOR_SAMPLE))
    assert [layer["fused"] for layer in layers] == [True, False, False]
    assert layers[0]["onnx_nodes"] == ["/conv1/Conv", "/relu/Relu"]
    assert layers[0]["precisions"] == ["FP16", "FP32"] and layers[0]["tactic"] == "sm80_xmma_fprop_implicit_gemm"
    assert layers[1]["type"] == "Pooling" and layers[2]["type"] == "unknown"
    summary = summarize_layers(layers, "engine_inspector")
    assert summary["fused_count"] == 1 and summary["fused"][0]["name"] == "/conv1/Conv + /relu/Relu"
    assert summary["by_precision"] == {"FP32": 2, "FP16": 2, "unknown": 1}
    with pytest.raises(UserError, match="invalid JSON"):
        layers_from_inspector_json("{")
    with pytest.raises(UserError, match="no 'Layers'"):
        layers_from_inspector_json("{}")


@needs_trt
def test_an_engine_without_a_sidecar_is_inspected_with_a_warning(
    built: tuple[Path, bytes, bytes], tmp_path: Path
) -> None:
    """An engine from trtexec or Polygraphy: size and sha256 always; I/O and layers where it deserializes."""
    import hashlib

    path = tmp_path / "trtexec.plan"
    path.write_bytes(built[1])
    info = inspect_engine(path)
    assert info["sidecar"] is None and info["integrity"] == "unverified" and info["model"] is None
    assert info["engine_sha256"] == hashlib.sha256(built[1]).hexdigest() and info["size"] == len(built[1])
    assert "nothing could be verified" in info["notes"][0]
    text = format_engine_summary(info)
    assert "WARNING   no sidecar" in text and info["engine_sha256"] in text
    if compat.gpu_runtime_usable():
        assert info["input"]["name"] == "input" and info["input"]["max_shape"] == [4, 3, 8, 8]
        assert [o["name"] for o in info["outputs"]] == ["logits"] and info["summary"]["layer_count"] >= 1
    else:
        # TensorRT-RTX cannot deserialize without a GPU (cudaError 35): nothing more is claimed
        assert info["input"] is None and info["layers"] == []
        assert any("live inspection unavailable" in n for n in info["notes"])
