"""Files that run inside Triton, not in resnet-deploy: ``triton-repo`` and ``serve`` copy them into place.

- :mod:`.onnxruntime_backend` -> ``<backend-dir>/onnxruntime/model.py`` and :mod:`.tensorrt_backend` ->
  ``<backend-dir>/tensorrt/model.py``: Triton's "Python-based backends", which serve every model whose config says
  ``platform: "onnxruntime_onnx"`` / ``"tensorrt_plan"`` on a server that has only the python backend (the
  ``nvidia-pytriton`` binary). NVIDIA's containers use their native backends for the same repository instead.
- :mod:`.preprocess` -> ``<repo>/<name>_preprocess/1/model.py``: the first step of the ``--image-input`` ensemble;
  it needs only numpy, so it runs unchanged in NVIDIA's containers.

Each imports ``triton_python_backend_utils`` (which only exists inside Triton's python backend) when Triton first
calls it, so tests import these modules directly.
"""
