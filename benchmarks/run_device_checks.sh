#!/usr/bin/env bash
# Every GPU check this project owes, as one command for a lent device machine (H100/H200: CUDA, PyTorch, CuPy,
# cuda-python, onnx, rich in its image; no TensorRT, no network). Fits a 540 s timeout: each step gets what is left
# of a 520 s budget, the most important first, and every step's outcome is one PASS/FAIL/SKIP line.
#
#   0. the kernels, built for this GPU's architecture only (CMake + nvcc; or a carried build/kernels is used);
#   1. benchmarks/device_checks.py: what a CUDA GPU without TensorRT can show of the TensorRT path (issue #13):
#      the plugin's cuda-python launch path against torch, the runtime's stream/event/CUDA-graph handling on a
#      captured kernel (with a failing capture), the 256-byte chunking through staging buffers;
#   2. benchmarks/bench_residual_kernel.py --build --quick: the fused residual add+ReLU kernels against torch.relu(a + b)
#      (FP32/INT8 exact, FP16 within 1 ulp, poisoned outputs) and their bandwidth against a D2D copy (issue #6);
#   3. benchmarks/gpu_baselines.py: PyTorch FP32 and FP16 channels-last CUDA-graph baselines for resnet18/50 at
#      224 (issue #7), stopped with SIGINT when the budget runs out (it then writes what it measured).
#
# Through the device tool:  run(command="bash benchmarks/run_device_checks.sh", timeout_s=540)
# Results are written under $OUT (device_checks/, kernel/, gpu/, summary.txt); copy them into benchmarks/results/.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/device-checks}
BUDGET=${DEVICE_CHECKS_BUDGET:-520}
PY=${PYTHON:-python3}
mkdir -p "$OUT/device_checks" "$OUT/kernel" "$OUT/gpu"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
START=$SECONDS
status=0

left() { echo $((BUDGET - (SECONDS - START))); }
say() { echo "$*" | tee -a "$SUMMARY"; }

# step NAME MAX_SECONDS SIGNAL COMMAND...: run with at most MAX_SECONDS (or what is left), one line of outcome.
step() {
  local name=$1 max=$2 sig=$3
  shift 3
  local t
  t=$(left)
  ((t > max)) && t=$max
  if ((t < 15)); then
    say "SKIP $name: no time left in the ${BUDGET} s budget"
    return 0
  fi
  local t0=$SECONDS rc=0
  timeout -s "$sig" -k 10 "$t" "$@" || rc=$?
  if ((rc == 0)); then
    say "PASS $name ($((SECONDS - t0)) s)"
  elif [[ $sig == INT ]] && ((rc == 130)); then
    say "PARTIAL $name: stopped at the budget after ${t} s; what it measured is under $OUT"
  elif ((rc == 124 || rc == 130)); then
    say "FAIL $name: stopped after ${t} s (partial results, if any, are under $OUT)"
    status=1
  else
    say "FAIL $name: exit $rc ($((SECONDS - t0)) s)"
    status=1
  fi
  return 0
}

say "device: $(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 | head -1)"
say "torch: $($PY -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available())' 2>&1 | tail -1)"
say "cuda-python: $($PY -c 'import importlib.metadata as m; print(m.version("cuda-python"))' 2>&1 | tail -1)"

# 0. kernels for this GPU only (one PTX arch builds in seconds); a build folder carried along is used if present.
CC=$($PY -c 'import torch; a, b = torch.cuda.get_device_capability(0); print(f"{a}{b}")' 2>/dev/null || echo "")
export RESNET_DEPLOY_KERNELS_DIR="${RESNET_DEPLOY_KERNELS_DIR:-$PWD/build/kernels-device}"
if [[ -n "$CC" ]] && ! [[ -f "$RESNET_DEPLOY_KERNELS_DIR/kernels_manifest.json" ]]; then
  step "kernel build (sm_$CC)" 150 TERM $PY -c "
import sys
from resnet_deploy.kernels import build_kernels
a = build_kernels(archs=[$CC], jobs=8)
print('built', a.library.name, 'PTX for', a.archs, 'with nvcc', a.nvcc_version)
"
fi
if ! [[ -f "$RESNET_DEPLOY_KERNELS_DIR/kernels_manifest.json" ]] && [[ -f build/kernels/kernels_manifest.json ]]; then
  export RESNET_DEPLOY_KERNELS_DIR="$PWD/build/kernels"
  say "using the carried kernel build in build/kernels"
fi

# 1. the TensorRT path's CUDA parts (PASS/FAIL per part are in its own output and device_checks.json)
step "device_checks" 120 TERM $PY benchmarks/device_checks.py --out "$OUT/device_checks"

# 2. kernel correctness and bandwidth
step "bench_residual_kernel" 170 TERM $PY benchmarks/bench_residual_kernel.py --build --quick --out-dir "$OUT/kernel"

# 3. PyTorch GPU baselines with whatever time is left (SIGINT: the benchmark writes what it has)
step "gpu_baselines" 400 INT $PY benchmarks/gpu_baselines.py --batch 1,8,32,128,256 --duration 1 --out "$OUT/gpu"

say "total $((SECONDS - START)) s; exit $status"
ls -lR "$OUT" | head -60
exit $status
