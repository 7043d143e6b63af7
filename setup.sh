#!/usr/bin/env bash
# Set up resnet-deploy on a fresh Debian machine: Fashion-MNIST from Debian, a virtualenv in .venv with the
# package, its test tools and TensorRT-RTX's builder (for engine-building tests without a GPU).
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch==2.13.0 pins the CPU build these machines carry; the package itself only asks for a range.
.venv/bin/pip install -q --disable-pip-version-check torch==2.13.0 -e ".[dev,openvino]"
# Type stubs of TensorRT 10.13's Python API, for the mypy check of code only a TensorRT GPU can run. Without
# --no-deps pip would pull the `tensorrt` placeholder, which cannot install here.
.venv/bin/pip install -q --disable-pip-version-check --no-deps tensorrt-stubs==10.13.0.35.1
# Triton (`serve`, README "Serving"): the server's Python runs from .venv-serve, where the `serve` extra pins
# numpy<2 for Triton's python backend stub, with .venv's onnxruntime (logits match bit for bit). .venv (numpy 2)
# gets the same tritonclient without its numpy/protobuf pins: its config proto and clients work with both.
ORT=$(.venv/bin/python -c "import onnxruntime; print(onnxruntime.__version__)")
[ -x .venv-serve/bin/python ] || "$PY" -m venv .venv-serve
.venv-serve/bin/pip install -q --disable-pip-version-check torch==2.13.0 "onnxruntime==$ORT" -e ".[serve]"
.venv/bin/pip install -q --disable-pip-version-check grpcio geventhttpclient==2.0.2 python-rapidjson packaging
.venv/bin/pip install -q --disable-pip-version-check --no-deps tritonclient==2.51.0
echo "resnet-deploy is set up in .venv (activate with: . .venv/bin/activate)"
