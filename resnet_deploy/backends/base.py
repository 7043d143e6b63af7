"""The interface every backend implements: validated, batch-splitting ``predict`` on numpy or torch input."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..info import ModelInfo, has_dynamic_hw


class InferenceModel(ABC):
    """A loaded model. Subclasses set the I/O description in ``__init__`` and implement :meth:`_run`.

    ``input_shape`` holds ``None`` for dynamic axes (the batch axis at least). ``max_batch`` is the largest
    batch one call of :meth:`_run` accepts (a TensorRT profile's maximum); larger batches are split.
    """

    backend: str = "abstract"
    precision: str = "fp32"

    def __init__(
        self,
        *,
        input_name: str,
        input_shape: tuple[int | None, ...],
        input_dtype: np.dtype[Any],
        output_name: str,
        max_batch: int | None = None,
        info: ModelInfo | None = None,
        path: Path | None = None,
    ) -> None:
        self.input_name = input_name
        self.input_shape = input_shape
        self.input_dtype = np.dtype(input_dtype)
        self.output_name = output_name
        self.max_batch = max_batch
        self.info = info
        self.path = path

    @abstractmethod
    def _run(self, batch: np.ndarray) -> np.ndarray:
        """Run one validated batch (at most ``max_batch``) and return the output as numpy."""

    def _to_numpy(self, batch: Any) -> np.ndarray:
        if isinstance(batch, np.ndarray):
            return batch
        if type(batch).__module__.startswith("torch"):
            return batch.detach().cpu().numpy()  # type: ignore[no-any-return]
        raise UserError(f"predict() takes a numpy array or torch tensor, not {type(batch).__name__}")

    def validate(self, x: np.ndarray) -> None:
        """Raise a one-line :class:`UserError` when ``x`` does not fit the model's input."""
        if x.dtype != self.input_dtype:
            raise UserError(f"input dtype {x.dtype} does not match the model's {self.input_dtype}")
        if x.ndim != len(self.input_shape):
            raise UserError(f"input has shape {tuple(x.shape)}; the model takes {self.describe_shape()}")
        for got, want in zip(x.shape, self.input_shape, strict=True):
            if want is not None and got != want:
                raise UserError(f"input has shape {tuple(x.shape)}; the model takes {self.describe_shape()}")
        if x.shape[0] == 0:
            raise UserError("input batch is empty")

    def sized_input_shape(self) -> tuple[int | None, ...]:
        """``input_shape`` with dynamic H and W at the model's recorded input size (the opt size its images are
        resized to), where it records one: the shape to time or feed it at."""
        shape = self.input_shape
        if self.info is not None and has_dynamic_hw(shape):
            return (shape[0], shape[1], self.info.input_size, self.info.input_size)
        return shape

    def describe_shape(self, batch: bool = True) -> str:
        """``(N, 1, 28, 28)``; ``(1, 28, 28)`` without the batch axis; ``(N, 1, H, W)`` for dynamic H and W."""
        names = ["N", "C", "H", "W"] if len(self.input_shape) == 4 else ["N"] * len(self.input_shape)
        named = [
            "N" if d is None and i == 0 else (names[i] if d is None else str(d)) for i, d in enumerate(self.input_shape)
        ]
        return "(" + ", ".join(named if batch else named[1:]) + ")"

    def prepare(self, batch: Any) -> np.ndarray:
        """``batch`` as the model's input: a numpy array or torch tensor of shape (N, C, H, W), or (C, H, W) for one
        image (a batch axis of 1 is added). Floats of another width (float64, float16) are converted to the model's
        input dtype, as ``x.astype(model.input_dtype)`` would, refusing values that become infinite; anything else
        (uint8 pixels, ints, bools) is refused with a line saying what to pass."""
        x = self._to_numpy(batch)
        if x.ndim == len(self.input_shape) - 1:
            x = x[None]
        if x.dtype != self.input_dtype:
            if x.dtype.kind != "f" or self.input_dtype.kind != "f":
                raise UserError(
                    f"predict() takes preprocessed {self.input_dtype} input {self.describe_shape()} or one image "
                    f"{self.describe_shape(batch=False)}, not {x.dtype}: decode image files with "
                    "resnet_deploy.load_images(paths, model), or convert pixels yourself (x.astype(np.float32) / 255, "
                    "then the model's normalisation)"
                )
            with np.errstate(over="ignore"):  # overflow is checked right below, in one line
                converted = x.astype(self.input_dtype)
            if not np.isfinite(converted).all() and np.isfinite(x).all():
                raise UserError(
                    f"input holds values beyond the range of the model's input type {self.input_dtype} "
                    f"(largest magnitude {float(np.max(np.abs(x))):.3g})"
                )
            x = converted
        return np.ascontiguousarray(x)

    def predict(self, batch: Any) -> np.ndarray:
        """Logits (N, classes) for a batch (see :meth:`prepare` for what is accepted: (C, H, W) gives N = 1, other
        float widths are converted); batches above ``max_batch`` are split and the results concatenated."""
        x = self.prepare(batch)
        self.validate(x)
        step = self.max_batch or x.shape[0]
        outs = [self._run(x[i : i + step]) for i in range(0, x.shape[0], step)]
        return outs[0] if len(outs) == 1 else np.concatenate(outs, axis=0)

    def topk(self, batch: Any, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """(softmax probabilities, class indices) of the ``k`` best classes per image, best first."""
        return topk(self.predict(batch), k)

    def close(self) -> None:
        """Release backend resources (sessions, device memory)."""
        return None

    def __enter__(self) -> InferenceModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        arch = self.info.arch if self.info else "?"
        return f"<{type(self).__name__} {arch} {self.precision} input={self.input_name}{self.describe_shape()}>"


def topk(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(softmax probabilities, indices) of the ``k`` largest logits per row, best first."""
    logits = logits.astype(np.float64)
    k = max(1, min(k, logits.shape[1]))
    idx = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = z / z.sum(axis=1, keepdims=True)
    return np.take_along_axis(probs, idx, axis=1), idx
