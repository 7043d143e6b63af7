"""Accuracy evaluation of any backend on a labelled dataset: top-1/top-5, per class, and agreement with a reference."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._io import atomic_write_text, check_no_collisions, check_writable
from .backends.base import InferenceModel
from .backends.loader import load, model_files
from .data.datasets import Dataset, open_dataset
from .errors import UserError
from .info import describe_or_shape

DEFAULT_BATCH_SIZE = 256
CONFUSION_MAX_CLASSES = 100  # a 1000 x 1000 confusion matrix is 1M numbers of JSON nobody reads
REPORT_FORMAT = "resnet-deploy-eval/1"


@dataclass
class ClassAccuracy:
    """Accuracy on the samples of one class."""

    index: int
    label: str | None
    count: int
    correct: int

    @property
    def top1(self) -> float | None:
        return 100.0 * self.correct / self.count if self.count else None


@dataclass
class EvalReport:
    """What :func:`evaluate` measured. Accuracies are percentages."""

    model: str
    dataset: str
    count: int
    correct_top1: int
    correct_top5: int
    top5_k: int  # k of "top-5": min(5, number of model outputs)
    classes: list[ClassAccuracy]
    # confusion[true label][predicted output]: one row per data class, one column per model output; None above
    # CONFUSION_MAX_CLASSES outputs
    confusion: list[list[int]] | None
    reference: str | None = None
    agreement_count: int | None = None  # images where model and reference give the same top-1 class
    reference_correct_top1: int | None = None
    seconds: float = 0.0
    batch_size: int = DEFAULT_BATCH_SIZE
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what loading the models warned about

    @property
    def top1(self) -> float:
        return 100.0 * self.correct_top1 / self.count

    @property
    def top5(self) -> float:
        return 100.0 * self.correct_top5 / self.count

    @property
    def agreement(self) -> float | None:
        return None if self.agreement_count is None else 100.0 * self.agreement_count / self.count

    @property
    def reference_top1(self) -> float | None:
        return None if self.reference_correct_top1 is None else 100.0 * self.reference_correct_top1 / self.count

    def to_dict(self) -> dict[str, Any]:
        """Stable JSON-ready form (key order fixed; percentages rounded to 4 decimals)."""

        def pct(v: float | None) -> float | None:
            return None if v is None else round(v, 4)

        return {
            "format": REPORT_FORMAT,
            "model": self.model,
            "dataset": self.dataset,
            "count": self.count,
            "top1": pct(self.top1),
            "top5": pct(self.top5),
            "top5_k": self.top5_k,
            "correct_top1": self.correct_top1,
            "correct_top5": self.correct_top5,
            "per_class": [
                {"index": c.index, "label": c.label, "count": c.count, "correct": c.correct, "top1": pct(c.top1)}
                for c in self.classes
            ],
            "confusion": self.confusion,
            "reference": self.reference,
            "agreement": pct(self.agreement),
            "agreement_count": self.agreement_count,
            "reference_top1": pct(self.reference_top1),
            "batch_size": self.batch_size,
            "seconds": round(self.seconds, 3),
            "notes": list(self.notes),
            "warnings": list(self.warnings),
        }

    def summary(self) -> str:
        """Human-readable report: headline figures, then per-class accuracy."""
        lines = [
            f"model    {self.model}",
            f"data     {self.dataset} ({self.count} images, {self.seconds:.1f} s)",
            f"top-1    {self.top1:.2f} %  ({self.correct_top1}/{self.count})",
            f"top-{self.top5_k}    {self.top5:.2f} %  ({self.correct_top5}/{self.count})",
        ]
        if self.reference is not None and self.agreement is not None:
            lines.append(f"agrees   {self.agreement:.2f} % of top-1 predictions with {self.reference}")
            if self.reference_top1 is not None:
                lines.append(f"          (reference top-1 {self.reference_top1:.2f} %)")
        present = [c for c in self.classes if c.count]
        if present and len(present) <= 50:
            width = max(len(c.label or str(c.index)) for c in present)
            lines.append("per class:")
            for c in present:
                name = c.label or str(c.index)
                lines.append(f"  {c.index:>3} {name:<{width}}  {c.top1:6.2f} %  ({c.correct}/{c.count})")
        elif present:
            worst = sorted(present, key=lambda c: (c.top1 or 0.0, c.index))[:5]
            lines.append("worst classes: " + ", ".join(f"{c.label or c.index} {c.top1:.1f} %" for c in worst))
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def model_name(model: InferenceModel) -> str:
    """Short description of a model for reports: its file or bundled name, backend and precision."""
    if model.path is not None:
        where = model.path.name
    elif model.info is not None:
        where = model.info.name or model.info.arch
    else:
        where = type(model).__name__
    return f"{where} ({model.backend}, {model.precision})"


def _check_input(model: InferenceModel, dataset: Dataset, role: str) -> None:
    want = model.input_shape[1:]
    got = tuple(dataset.sample_shape)
    if len(want) != len(got) or any(w is not None and w != g for w, g in zip(want, got, strict=False)):
        shape = "x".join(map(str, got))
        raise UserError(f"{dataset.spec} has samples of shape {shape}; the {role} takes {model.describe_shape()}")


def _check_finite(logits: np.ndarray, role: str) -> None:
    """NaN or infinite logits are broken weights or overflow: scoring them would report chance-level accuracy as a
    measurement."""
    bad = int((~np.isfinite(logits).all(axis=1)).sum())
    if bad:
        raise UserError(
            f"the {role} gave NaN or infinite logits for {bad} of {logits.shape[0]} images in a batch: its weights "
            "are broken or the data overflows it; no accuracy reported"
        )


def _cast(x: np.ndarray, model: InferenceModel) -> np.ndarray:
    # FP16 graphs may take float16 input; the data pipeline always produces float32.
    return x if x.dtype == model.input_dtype else x.astype(model.input_dtype)


def _progress(enabled: bool) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("images"),
        TimeRemainingColumn(),
        console=console,
        disable=not (enabled and console.is_terminal),
        transient=True,
    )


def evaluate(
    model: InferenceModel,
    dataset: Dataset,
    reference: InferenceModel | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    limit: int | None = None,
    progress: bool = True,
) -> EvalReport:
    """Run ``model`` (and ``reference``, when given) over ``dataset`` and count hits.

    The bar shows on a terminal only (stderr) and never when ``progress`` is False. Ctrl-C is not caught: it
    propagates as ``KeyboardInterrupt`` after the bar is closed.
    """
    if batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {batch_size}")
    _check_input(model, dataset, "model")
    if reference is not None:
        _check_input(reference, dataset, "reference model")
    total = len(dataset.subset_indices(limit))
    if total == 0:
        raise UserError(f"{dataset.spec} holds no samples")
    notes: list[str] = []
    num_outputs: int | None = None
    correct1 = correct5 = 0
    agree = ref_correct = 0
    k = 5
    class_count = np.zeros(0, dtype=np.int64)
    class_correct = np.zeros(0, dtype=np.int64)
    confusion: np.ndarray | None = None
    start = time.perf_counter()
    with _progress(progress) as bar:
        task = bar.add_task("evaluating", total=total)
        for x, y in dataset.batches(batch_size, limit):
            logits = np.asarray(model.predict(_cast(x, model)), dtype=np.float32)
            if logits.ndim != 2 or logits.shape[0] != x.shape[0]:
                raise UserError(f"the model returned shape {logits.shape}; expected (batch, classes) logits")
            _check_finite(logits, "model")
            if num_outputs is None:
                num_outputs = int(logits.shape[1])
                if dataset.num_classes > num_outputs:
                    raise UserError(
                        f"{dataset.spec} has labels up to {dataset.num_classes - 1}, out of range for a model "
                        f"with {num_outputs} outputs"
                    )
                if dataset.num_classes != num_outputs:
                    notes.append(
                        f"the data has {dataset.num_classes} classes, the model {num_outputs} outputs: "
                        "label i is taken to mean model output i"
                    )
                k = min(5, num_outputs)
                class_count = np.zeros(num_outputs, dtype=np.int64)
                class_correct = np.zeros(num_outputs, dtype=np.int64)
                if num_outputs <= CONFUSION_MAX_CLASSES:
                    confusion = np.zeros((num_outputs, num_outputs), dtype=np.int64)
            elif logits.shape[1] != num_outputs:
                raise UserError(f"the model returned {logits.shape[1]} outputs after {num_outputs} before")
            if y.size and (int(y.max()) >= num_outputs or int(y.min()) < 0):
                raise UserError(f"{dataset.spec} holds label {int(y.max())}, out of range for {num_outputs} outputs")
            # Stable sort of -logits: ties go to the lower class index, as argmax does.
            order = np.argsort(-logits, axis=1, kind="stable")[:, :k]
            pred = order[:, 0]
            hit1 = pred == y
            correct1 += int(hit1.sum())
            correct5 += int((order == y[:, None]).any(axis=1).sum())
            np.add.at(class_count, y, 1)
            np.add.at(class_correct, y[hit1], 1)
            if confusion is not None:
                np.add.at(confusion, (y, pred), 1)
            if reference is not None:
                ref_logits = np.asarray(reference.predict(_cast(x, reference)), dtype=np.float32)
                if ref_logits.shape != logits.shape:
                    raise UserError(f"the reference returned shape {ref_logits.shape}, the model {logits.shape}")
                _check_finite(ref_logits, "reference model")
                ref_pred = np.argsort(-ref_logits, axis=1, kind="stable")[:, 0]
                agree += int((ref_pred == pred).sum())
                ref_correct += int((ref_pred == y).sum())
            bar.advance(task, x.shape[0])
    seconds = time.perf_counter() - start
    names = dataset.labels
    if names is None and model.info is not None and model.info.labels is not None:
        names = model.info.labels
    classes = [
        ClassAccuracy(i, names[i] if names is not None and i < len(names) else None, int(n), int(c))
        for i, (n, c) in enumerate(zip(class_count, class_correct, strict=True))
        if i < dataset.num_classes or n
    ]
    return EvalReport(
        model=model_name(model),
        dataset=dataset.spec,
        count=total,
        correct_top1=correct1,
        correct_top5=correct5,
        top5_k=k,
        classes=classes,
        confusion=confusion[: dataset.num_classes].tolist() if confusion is not None else None,
        reference=model_name(reference) if reference is not None else None,
        agreement_count=agree if reference is not None else None,
        reference_correct_top1=ref_correct if reference is not None else None,
        seconds=seconds,
        batch_size=batch_size,
        notes=notes,
    )


def evaluate_model(
    model: str | Path,
    data: str | None = None,
    *,
    reference: str | Path | None = None,
    arch: str | None = None,
    reference_arch: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    limit: int | None = None,
    progress: bool = True,
    output: str | Path | None = None,
    runtime: str | None = None,
) -> EvalReport:
    """``resnet-deploy eval``: load ``model`` (and ``reference``) with :func:`resnet_deploy.load`, evaluate on
    ``data`` (default: the model's own test set when it is a Fashion-MNIST model), and write the JSON report to
    ``output`` when given. ``arch`` is needed only for checkpoints that do not name their architecture;
    ``runtime`` ("onnxruntime", "openvino") says what runs an ``.onnx`` ``model`` (default: what the graph's
    ``build --backend auto`` recorded, else ONNX Runtime)."""
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1, got {limit}")
    if output is not None:
        check_writable(output)  # fail before a long evaluation, not after
        inputs = [*model_files(model).items()]
        if reference is not None:
            inputs += model_files(reference, "--reference").items()
        if data is not None and Path(data).exists():
            inputs.append(("--data", data))
        check_no_collisions({"-o": output}, inputs)
    loaded = load(model, arch=arch, runtime=runtime)
    ref_model = None
    try:
        info = describe_or_shape(loaded.info, loaded.input_shape)
        spec = data
        if spec is None:
            if info is not None and info.dataset == "fashion-mnist":
                spec = "fashion-mnist:test"
            else:
                raise UserError(f"--data is required: {model} does not name the dataset it was trained on")
        dataset = open_dataset(spec, info)
        if reference is not None:
            ref_model = load(reference, arch=reference_arch)
        report = evaluate(loaded, dataset, reference=ref_model, batch_size=batch_size, limit=limit, progress=progress)
        # e.g. a graph auto measured faster on OpenVINO, running on ONNX Runtime as OpenVINO is not installed
        report.warnings = [str(w) for m in (loaded, ref_model) for w in getattr(m, "warnings", [])]
    finally:
        loaded.close()
        if ref_model is not None:
            ref_model.close()
    if output is not None:
        atomic_write_text(output, json.dumps(report.to_dict(), indent=2) + "\n")
    return report
