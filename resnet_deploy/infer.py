"""``resnet-deploy infer``: top-k classes for image files or a preprocessed array, with any backend."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._io import atomic_path, check_writable
from .backends.base import InferenceModel, topk
from .backends.loader import load
from .errors import UserError
from .info import ModelInfo, describe_or_shape


def load_npy(path: str | Path, input_dtype: np.dtype[Any] | None = None) -> np.ndarray:
    """Read an untrusted ``.npy`` batch (N, C, H, W) or single image (C, H, W) as a 4-D array.

    Pickled (object) arrays are refused; float arrays are cast to ``input_dtype``, other dtypes are an error
    (integer pixels need the model's preprocessing, which images get and raw arrays cannot).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"input {path} not found")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{path} is not a .npy array ({first})") from None
    if not isinstance(arr, np.ndarray):  # an .npz archive
        close = getattr(arr, "close", None)
        if close is not None:
            close()
        raise UserError(f"{path} is a zip archive (.npz?), not one array saved with numpy.save")
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise UserError(f"{path} has shape {arr.shape}; expected (N, C, H, W) or (C, H, W)")
    if arr.dtype.kind != "f":
        raise UserError(f"{path} holds {arr.dtype} values; expected floats (preprocessed model input)")
    if input_dtype is not None and np.dtype(input_dtype).kind == "f":
        arr = arr.astype(input_dtype, copy=False)
    if not np.isfinite(arr).all():
        raise UserError(f"{path} contains NaN or infinite values")
    return np.ascontiguousarray(arr)


def _info_for_images(model: InferenceModel) -> ModelInfo:
    info = describe_or_shape(model.info, model.input_shape)
    if info is None:
        raise UserError(
            f"the model (input {model.describe_shape()}) carries no resnet-deploy metadata and no fixed square input "
            "size; pass a preprocessed array with --input X.npy"
        )
    return info


def load_images(paths: Sequence[str | Path], model: InferenceModel) -> np.ndarray:
    """Decode and preprocess image files for ``model`` (resize/crop/normalise per its ModelInfo)."""
    from .data.preprocess import load_image

    info = _info_for_images(model)
    batch = np.stack([load_image(p, info) for p in paths])
    return batch.astype(model.input_dtype, copy=False)


@dataclass
class Predictions:
    """Logits and the top-k classes for each input."""

    sources: list[str]
    logits: np.ndarray
    probs: np.ndarray  # (N, k) softmax probabilities of the top-k classes, best first
    indices: np.ndarray  # (N, k)
    labels: list[str] | None = None
    model: str = ""
    backend: str = ""
    precision: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def label(self, index: int) -> str:
        if self.labels is not None and 0 <= index < len(self.labels):
            return self.labels[index]
        return f"class {index}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "backend": self.backend,
            "precision": self.precision,
            "results": [
                {
                    "input": src,
                    "top": [
                        {
                            "index": int(i),
                            "label": self.label(int(i)),
                            "prob": float(p),
                            "logit": float(self.logits[row, i]),
                        }
                        for p, i in zip(self.probs[row], self.indices[row], strict=True)
                    ],
                }
                for row, src in enumerate(self.sources)
            ],
        }


def predict(
    model: InferenceModel,
    inputs: np.ndarray | str | Path | None = None,
    *,
    images: Sequence[str | Path] = (),
    top_k: int = 5,
) -> Predictions:
    """Run a loaded model on an array (N, C, H, W) or (C, H, W), a ``.npy`` file, or image files (one of them)."""
    if (inputs is None) == (not images):
        raise UserError("give either an .npy input or image files (one of them)")
    if top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {top_k}")
    if images:
        batch = load_images(images, model)
        sources = [str(p) for p in images]
    else:
        name = "input"
        if not isinstance(inputs, np.ndarray):
            assert inputs is not None
            name, inputs = Path(inputs).name, load_npy(inputs)
        batch = inputs[None] if inputs.ndim == 3 else inputs
        if batch.dtype.kind == "f" and model.input_dtype.kind == "f":
            batch = batch.astype(model.input_dtype, copy=False)
        sources = [f"{name}[{i}]" for i in range(batch.shape[0])]
    logits = np.asarray(model.predict(batch), dtype=np.float32)
    if logits.ndim != 2 or logits.shape[0] != batch.shape[0]:
        raise UserError(f"the model's output has shape {logits.shape}; expected (N, classes)")
    probs, idx = topk(logits, top_k)
    labels = model.info.labels if model.info is not None else None
    if labels is not None and len(labels) != logits.shape[1]:
        labels = None  # labels for another head would mislabel classes
    return Predictions(
        sources=sources,
        logits=logits,
        probs=probs,
        indices=idx,
        labels=labels,
        model=str(model.path) if model.path else (model.info.arch if model.info else ""),
        backend=model.backend,
        precision=model.precision,
    )


def infer(
    model: str | Path,
    *,
    npy: str | Path | None = None,
    images: Sequence[str | Path] = (),
    top_k: int = 5,
    arch: str | None = None,
    input_size: int | None = None,
    save_logits: str | Path | None = None,
) -> Predictions:
    """Load ``model``, run it on the inputs, optionally save the logits (atomically) to ``save_logits``."""
    # Everything checkable without the model is checked first: loading an engine or a big graph takes seconds.
    if (npy is None) == (not images):
        raise UserError("give either an .npy input or image files (one of them)")
    if top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {top_k}")
    if save_logits is not None:
        check_writable(save_logits)
    array = load_npy(npy) if npy is not None else None
    m = load(model, arch=arch, input_size=input_size)
    try:
        preds = predict(m, array, images=images, top_k=top_k)
        if npy is not None:
            preds.sources = [f"{Path(npy).name}[{i}]" for i in range(len(preds.sources))]
    finally:
        m.close()
    if save_logits is not None:
        save_npy(save_logits, preds.logits)
    return preds


def save_npy(dest: str | Path, arr: np.ndarray) -> Path:
    """``numpy.save`` to ``dest`` exactly (no added suffix), atomically."""
    with atomic_path(dest) as tmp, open(tmp, "wb") as f:
        np.save(f, arr, allow_pickle=False)
    return Path(dest)
