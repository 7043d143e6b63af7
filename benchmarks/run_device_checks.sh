#!/usr/bin/env bash
# Every GPU check this project owes, as one command for a lent device machine (H100/H200: CUDA, PyTorch, CuPy,
# cuda-python, onnx, rich in its image; no TensorRT, no network). About 6 minutes; give it a 540 s timeout.
#
#   1. benchmarks/bench_residual_kernel.py --build: the fused residual add+ReLU kernels against torch.relu(a + b)
#      (FP32/INT8 exact, FP16 within 1 ulp, poisoned outputs) and their bandwidth against a D2D copy (issue #6);
#   2. benchmarks/gpu_baselines.py: PyTorch FP32 and FP16 channels-last CUDA-graph baselines for resnet18/50 at
#      224, batch 1..256 (issue #7).
#
# Through the device tool:  run(command="bash benchmarks/run_device_checks.sh", timeout_s=540)
# then copy $OUT's files (they come back under files_at) into benchmarks/results/ and commit them.
set -uo pipefail
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/device-checks}
mkdir -p "$OUT/kernel" "$OUT/gpu"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
status=0
timeout 240 python3 benchmarks/bench_residual_kernel.py --build --out-dir "$OUT/kernel" || status=$?
echo "bench_residual_kernel exit $status"
timeout 260 python3 benchmarks/gpu_baselines.py --batch 1,2,4,8,16,32,64,128,256 --duration 1 --out "$OUT/gpu" \
  || status=$?
echo "gpu_baselines exit $status"
ls -l "$OUT"/*
exit $status
