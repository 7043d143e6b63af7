"""Export torchvision's own ResNets the ways users do, and commit their graphs (without weights) as test fixtures.

torchvision does not import beside the CPU build of torch the project installs (torch 2.13.0 + torchvision fails
with "operator torchvision::nms does not exist"), and the pair that works here, torch 2.14.1 + torchvision 0.29.1,
is a 5.5 GB CUDA build that takes ~3 minutes to install. So the exports are made once, in a venv of their own:

    python3 -m venv .torchvision-venv
    .torchvision-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 onnx onnxscript
    .torchvision-venv/bin/python benchmarks/export_torchvision.py      # ~2 minutes; rewrites tests/build/fixtures/

and the tests read the graphs, not torchvision. The weights are left out (a ResNet-50 is 100 MB): every
initializer larger than :data:`KEEP_ELEMENTS` values keeps its name, dtype and dims but no data, and the file is
named ``*.skeleton.onnx`` because it is not a loadable model until ``tests/build/torchvision_graphs.py`` fills the
weights (with torchvision's initialisation distributions and random BatchNorm statistics, from a seed). Nodes,
names, attributes, opsets, shapes and the static batch axis are exactly what torchvision and torch.onnx wrote;
``manifest.json`` records the versions, the export call and the sha256 of each full export.

This script imports neither numpy nor resnet_deploy, only what that venv holds.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

KEEP_ELEMENTS = 16  # shape constants, axes, epsilons stay; weights and BatchNorm statistics go
OUT = Path(__file__).resolve().parent.parent / "tests" / "build" / "fixtures"


def _variants() -> dict[str, tuple[str, Callable[[Any, Any], bytes]]]:
    import torch

    def torchscript(**kw: Any) -> Callable[[Any, Any], bytes]:
        def export(model: Any, x: Any) -> bytes:
            buf = io.BytesIO()
            torch.onnx.export(model, (x,), buf, dynamo=False, **kw)
            return buf.getvalue()

        return export

    def dynamo(**kw: Any) -> Callable[[Any, Any], bytes]:
        def export(model: Any, x: Any) -> bytes:
            program = torch.onnx.export(model, (x,), **kw)
            return program.model_proto.SerializeToString()  # type: ignore[no-any-return]

        return export

    batch = torch.export.Dim("batch", min=1, max=64)
    return {
        # what trtexec users bring: static batch 1, TorchScript exporter, BatchNorm folded by constant folding
        "resnet50_b1_torchscript": (
            "torch.onnx.export(resnet50(), (torch.randn(1, 3, 224, 224),), f, dynamo=False)",
            torchscript(),
        ),
        # the same call without dynamo=False: torch 2.14's default, the dynamo exporter (opset 18, input 'x')
        "resnet50_b1_dynamo": ("torch.onnx.export(resnet50(), (torch.randn(1, 3, 224, 224),))", dynamo()),
        # the oldest opset resnet-deploy takes, BatchNorm left in the graph, other input/output names
        "resnet18_opset13_batchnorm": (
            "torch.onnx.export(resnet18(), (x,), f, dynamo=False, opset_version=13, "
            "training=TrainingMode.PRESERVE, do_constant_folding=False, input_names=['images'], "
            "output_names=['scores'])",
            torchscript(
                opset_version=13,
                training=torch.onnx.TrainingMode.PRESERVE,
                do_constant_folding=False,
                input_names=["images"],
                output_names=["scores"],
            ),
        ),
        # the newest opset, dynamic batch, dynamo exporter without its optimizer (BatchNorm left in)
        "resnet18_opset21_dynamo_dynamic": (
            "torch.onnx.export(resnet18(), (x,), opset_version=21, dynamic_shapes={'x': {0: Dim('batch')}}, "
            "optimize=False)",
            dynamo(opset_version=21, dynamic_shapes={"x": {0: batch}}, optimize=False),
        ),
    }


def strip(data: bytes) -> tuple[bytes, list[str]]:
    """The model without the data of its large initializers (names, dtypes, dims kept)."""
    import onnx

    model = onnx.load_from_string(data)
    stripped = []
    for t in model.graph.initializer:
        n = 1
        for d in t.dims:
            n *= d
        if n > KEEP_ELEMENTS:
            for name in ("raw_data", "float_data", "double_data", "int32_data", "int64_data"):
                t.ClearField(name)
            stripped.append(t.name)
    return model.SerializeToString(), stripped


def main() -> int:
    import onnx
    import torch
    import torchvision

    warnings.simplefilter("ignore")
    OUT.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "onnx": onnx.__version__,
        "made_by": "benchmarks/export_torchvision.py",
        "graphs": {},
    }
    for name, (call, export) in _variants().items():
        arch = name.split("_")[0]
        torch.manual_seed(0)
        model = getattr(torchvision.models, arch)().eval()  # torchvision's own initialisation, no weights file
        data = export(model, torch.randn(1, 3, 224, 224))
        skeleton, stripped = strip(data)
        path = OUT / f"torchvision_{name}.skeleton.onnx"
        path.write_bytes(skeleton)
        proto = onnx.load_from_string(skeleton)
        manifest["graphs"][path.name] = {
            "export": call,
            "full_export_sha256": hashlib.sha256(data).hexdigest(),
            "full_export_bytes": len(data),
            "opset": next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
            "input": proto.graph.input[0].name,
            "output": proto.graph.output[0].name,
            "ops": sorted({n.op_type for n in proto.graph.node}),
            "initializers_without_data": len(stripped),
        }
        print(f"{path.name}: {len(skeleton) / 1e3:.0f} kB (full export {len(data) / 1e6:.1f} MB)", flush=True)
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
