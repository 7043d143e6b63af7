"""sha256 of every graph ``resnet-deploy build`` writes for the bundled checkpoints, to prove a refactor changed none.

    python benchmarks/graph_fingerprints.py --save before.json      # on the old tree
    python benchmarks/graph_fingerprints.py --compare before.json   # on the new tree: exit 1 on any difference

Runs the CLI (the stable interface), so the same script works across refactors of the Python API. Variants per
checkpoint: FP32, FP16, INT8 in both Q/DQ placements, and the residual-fusion plugin rewrite of FP32 and of the
TensorRT-placed INT8 graph, all built for ONNX Runtime; and, where TensorRT-RTX is installed, the ``--emit-onnx``
graphs of FP16 and INT8 TensorRT engine builds. Engine bytes are not compared (TensorRT's own); the ONNX they are
built from is.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHECKPOINTS = ("fmnist_resnet20", "fmnist_resnet50_small")
VARIANTS: dict[str, list[str]] = {
    "fp32": ["--precision", "fp32"],
    "fp16": ["--precision", "fp16"],
    "int8_onnxruntime": ["--precision", "int8", "--calib-samples", "256"],
    "int8_tensorrt": ["--precision", "int8", "--calib-samples", "256", "--qdq-placement", "tensorrt"],
    "fp32_plugin": ["--precision", "fp32", "--residual-fusion", "plugin"],
    "int8_tensorrt_plugin": [
        "--precision",
        "int8",
        "--calib-samples",
        "256",
        "--qdq-placement",
        "tensorrt",
        "--residual-fusion",
        "plugin",
    ],
}
ENGINE_VARIANTS: dict[str, list[str]] = {
    "engine_fp16": ["--precision", "fp16"],
    "engine_int8": ["--precision", "int8", "--calib-samples", "256"],
}


def _has_tensorrt() -> bool:
    import importlib.util

    return any(importlib.util.find_spec(m) is not None for m in ("tensorrt_rtx_bindings", "tensorrt"))


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("resnet-deploy")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "resnet_deploy"]


def fingerprints() -> dict[str, str]:
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as d:
        jobs = [(name, args, False) for name, args in VARIANTS.items()]
        if _has_tensorrt():
            jobs += [(name, args, True) for name, args in ENGINE_VARIANTS.items()]
        for ckpt in CHECKPOINTS:
            for name, args, engine in jobs:
                dest = Path(d) / f"{ckpt}_{name}.onnx"
                cmd = [*_cli(), "build", "--weights", ckpt, *args]
                if engine:
                    cmd += ["--backend", "tensorrt", "-o", str(dest.with_suffix(".engine")), "--emit-onnx", str(dest)]
                else:
                    cmd += ["-o", str(dest)]
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
                out[f"{ckpt}/{name}"] = hashlib.sha256(dest.read_bytes()).hexdigest()
                print(f"{ckpt}/{name}: {out[f'{ckpt}/{name}'][:16]}", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", metavar="JSON")
    group.add_argument("--compare", metavar="JSON")
    args = ap.parse_args()
    now = fingerprints()
    if args.save:
        Path(args.save).write_text(json.dumps(now, indent=1) + "\n")
        return 0
    before = json.loads(Path(args.compare).read_text())
    differ = sorted(k for k in before if before[k] != now.get(k))
    for k in differ:
        print(f"DIFFERS: {k}")
    print("all graphs byte-identical" if not differ else f"{len(differ)} of {len(before)} graphs differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
