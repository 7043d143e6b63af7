"""``resnet-deploy infer``: top-k classes for image files or a preprocessed array, with any backend."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._io import atomic_path, check_input_file, check_no_collisions, check_writable
from .backends.base import InferenceModel, topk
from .backends.loader import load, model_files
from .data.labels import check_label_count, read_labels
from .errors import UserError
from .info import ModelInfo, describe_or_shape

DEFAULT_BATCH_SIZE = 256  # images per inference call: 20,000 images must not become one 12 GB batch
_FINITE_CHECK_VALUES = 1 << 22  # values per isfinite() pass: bounded memory on a memory-mapped array


def _rows_per_chunk(arr: np.ndarray) -> int:
    return max(1, _FINITE_CHECK_VALUES // max(1, math.prod(arr.shape[1:])))


def _first_non_finite(arr: np.ndarray) -> int | None:
    """Index along the first axis of the first row holding NaN or infinity (None when all are finite), reading
    ``arr`` in chunks so a memory-mapped file is never loaded whole."""
    step = _rows_per_chunk(arr)
    for start in range(0, arr.shape[0], step):
        bad = ~np.isfinite(arr[start : start + step]).reshape(min(step, arr.shape[0] - start), -1).all(axis=1)
        if bad.any():
            return start + int(np.argmax(bad))
    return None


def load_npy(path: str | Path, input_dtype: np.dtype[Any] | None = None) -> np.ndarray:
    """Read an untrusted ``.npy`` batch (N, C, H, W) or single image (C, H, W) as a 4-D array.

    Pickled (object) arrays are refused; float arrays are cast to ``input_dtype`` when it is given, other dtypes
    are an error (integer pixels need the model's preprocessing, which images get and raw arrays cannot). Without
    ``input_dtype`` the array is memory-mapped, read-only: a 12 GB file is read batch by batch, and a header that
    claims more data than the file holds is refused instead of allocated.
    """
    path = check_input_file(path, "input")
    try:
        arr = np.load(path, allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError, EOFError, MemoryError) as exc:
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
    if arr.shape[0] == 0:
        raise UserError(f"{path} holds no images (shape {arr.shape})")
    bad = _first_non_finite(arr)
    if bad is not None:
        raise UserError(f"{path} contains NaN or infinite values (first in image {bad})")
    if input_dtype is not None and np.dtype(input_dtype).kind == "f":
        return _model_batch(arr, np.dtype(input_dtype), path.name)
    return arr


def _model_batch(x: np.ndarray, dtype: np.dtype[Any], name: str, offset: int = 0) -> np.ndarray:
    """``x`` as a writable C-contiguous array of ``dtype``, refusing values that overflow it (float64 1e300 is
    infinity in float32, and the model would answer NaN)."""
    batch = np.array(x, dtype=dtype, order="C", copy=True) if dtype.kind == "f" else np.array(x, order="C")
    if batch.dtype.kind == "f" and not np.isfinite(batch).all():
        row = int(np.argmax(~np.isfinite(batch.reshape(batch.shape[0], -1)).all(axis=1)))
        raise UserError(
            f"{name}[{offset + row}] holds values beyond the range of the model's input type {batch.dtype} "
            f"(largest magnitude {float(np.max(np.abs(x))):.3g})"
        )
    return batch


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
    warnings: list[str] = field(default_factory=list)  # what loading the model warned about

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


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")


def _finite_logits(logits: np.ndarray, sources: Sequence[str]) -> None:
    """Refuse NaN or infinite logits: they come from broken weights or an input the model overflows on, and a
    top-k of NaN is nonsense (and ``NaN`` is not JSON)."""
    bad = ~np.isfinite(logits).all(axis=1)
    sources = sources[: logits.shape[0]]
    if bad.any():
        first = sources[int(np.argmax(bad))]
        raise UserError(
            f"the model gave NaN or infinite logits for {int(bad.sum())} of {len(sources)} inputs in a batch "
            f"(first: {first}): its weights are broken or the input overflows it"
        )


def predict(
    model: InferenceModel,
    inputs: np.ndarray | str | Path | None = None,
    *,
    images: Sequence[str | Path] = (),
    top_k: int = 5,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int, int], None] | None = None,
) -> Predictions:
    """Run a loaded model on an array (N, C, H, W) or (C, H, W), a ``.npy`` file, or image files (one of them),
    ``batch_size`` images per inference call (images are decoded batch by batch too); ``progress(done, total)``
    after each batch."""
    if (inputs is None) == (not images):
        raise UserError("give either an .npy input or image files (one of them)")
    if top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {top_k}")
    _check_batch_size(batch_size)
    outs: list[np.ndarray] = []
    if images:
        sources = [str(p) for p in images]
        for start in range(0, len(images), batch_size):
            outs.append(_run(model, load_images(images[start : start + batch_size], model), sources[start:]))
            if progress is not None:
                progress(min(start + batch_size, len(images)), len(images))
    else:
        name = "input"
        if not isinstance(inputs, np.ndarray):
            assert inputs is not None
            name, inputs = Path(inputs).name, load_npy(inputs)
        array = inputs[None] if inputs.ndim == 3 else inputs
        sources = [f"{name}[{i}]" for i in range(array.shape[0])]
        dtype = model.input_dtype if array.dtype.kind == "f" and model.input_dtype.kind == "f" else array.dtype
        for start in range(0, array.shape[0], batch_size):
            batch = _model_batch(array[start : start + batch_size], dtype, name, start)
            outs.append(_run(model, batch, sources[start:]))
            if progress is not None:
                progress(min(start + batch_size, array.shape[0]), array.shape[0])
    logits = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=0)
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


def _run(model: InferenceModel, batch: np.ndarray, sources: Sequence[str]) -> np.ndarray:
    logits = np.asarray(model.predict(batch), dtype=np.float32)
    if logits.ndim != 2 or logits.shape[0] != batch.shape[0]:
        raise UserError(f"the model's output has shape {logits.shape}; expected (N, classes)")
    _finite_logits(logits, sources)
    return logits


def infer(
    model: str | Path,
    *,
    npy: str | Path | None = None,
    images: Sequence[str | Path] = (),
    top_k: int = 5,
    arch: str | None = None,
    input_size: int | None = None,
    save_logits: str | Path | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    labels: str | Path | None = None,
    progress: Callable[[str, str], None] | None = None,
    runtime: str | None = None,
) -> Predictions:
    """Load ``model``, run it on the inputs (``batch_size`` at a time), optionally save the logits (atomically)
    to ``save_logits``. ``labels`` (a file, one class name per line) names the classes instead of the model's
    own names (any model: a foreign engine or graph has none). ``progress(stage, detail)``: ``load``, then
    ``infer`` after each batch. ``runtime`` ("onnxruntime", "openvino") runs an ``.onnx`` there (default: what
    its ``build --backend auto`` recorded, else ONNX Runtime)."""
    # Everything checkable without the model is checked first: loading an engine or a big graph takes seconds.
    if (npy is None) == (not images):
        raise UserError("give either an .npy input or image files (one of them)")
    if top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {top_k}")
    _check_batch_size(batch_size)
    for image in images:
        check_input_file(image, "image")
    if save_logits is not None:
        check_writable(save_logits)
        inputs = [*model_files(model).items(), ("--input", npy), ("--labels", labels), *(("IMAGE", p) for p in images)]
        check_no_collisions({"--save-logits": save_logits}, inputs)
    names = read_labels(labels) if labels is not None else None
    array = load_npy(npy) if npy is not None else None
    say = progress or (lambda stage, detail: None)
    say("load", f"loading {Path(model).name}")
    m = load(model, arch=arch, input_size=input_size, runtime=runtime)
    try:
        preds = predict(
            m,
            array,
            images=images,
            top_k=top_k,
            batch_size=batch_size,
            progress=lambda done, total: say("infer", f"{done} of {total} inputs"),
        )
        if names is not None and labels is not None:
            check_label_count(names, preds.logits.shape[1], labels, str(model))
            preds.labels = names
        preds.warnings = [str(w) for w in getattr(m, "warnings", [])]  # an engine without a sidecar says so
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
