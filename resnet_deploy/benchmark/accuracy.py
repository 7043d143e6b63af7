"""Accuracy in the benchmark report: top-1/top-5 of every target and top-1 agreement with its group's FP32 model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import UserError
from ..models.weights import ModelInfo

if TYPE_CHECKING:
    from .core import BenchConfig, Target


def target_info(target: Target) -> ModelInfo | None:
    """The model's :class:`ModelInfo`, or one rebuilt from a TensorRT sidecar's ``model``/``preprocessing``."""
    model = target.model
    if model.info is not None:
        return model.info
    meta = getattr(model, "sidecar", None)
    if isinstance(meta, dict) and isinstance(meta.get("model"), dict) and meta["model"].get("arch"):
        m, pre = meta["model"], meta.get("preprocessing") or {}
        return ModelInfo(
            arch=str(m["arch"]),
            num_classes=int(m.get("num_classes") or 1000),
            in_channels=int(pre.get("in_channels") or model.input_shape[1] or 3),
            input_size=int(pre.get("input_size") or model.input_shape[-1] or 224),
            mean=pre.get("mean") if pre.get("normalization") == "in_graph" else None,
            std=pre.get("std") if pre.get("normalization") == "in_graph" else None,
            name=m.get("name"),
            dataset=m.get("dataset"),
            labels=m.get("labels"),
        )
    return None


def evaluate_targets(targets: list[Target], config: BenchConfig) -> list[dict[str, Any]]:
    """One accuracy record per target, in target order."""
    from ..data.datasets import open_dataset
    from ..evaluate import evaluate
    from .core import reference_label

    if config.data is None:
        return []
    by_label = {t.label: t for t in targets}
    out: list[dict[str, Any]] = []
    for t in targets:
        if not t.evaluate:
            continue
        info = target_info(t)
        dataset = open_dataset(config.data, info)
        ref_name = reference_label(targets, t.group)
        ref_target = by_label.get(ref_name) if ref_name is not None and ref_name != t.label else None
        ref = ref_target.model if ref_target is not None and ref_target.evaluate else None
        try:
            rep = evaluate(
                t.model, dataset, reference=ref, batch_size=config.eval_batch, limit=config.data_limit, progress=False
            )
        except UserError as exc:
            raise UserError(f"accuracy of {t.label}: {exc}") from None
        out.append(
            {
                "model": t.label,
                "backend": t.backend,
                "precision": t.precision,
                "group": t.group,
                "dataset": rep.dataset,
                "count": rep.count,
                "top1": round(rep.top1, 4),
                "top5": round(rep.top5, 4),
                "top5_k": rep.top5_k,
                "reference": ref_name if ref is not None else None,
                "is_reference": ref_name == t.label,
                "agreement_top1": None if rep.agreement is None else round(rep.agreement, 4),
                "seconds": round(rep.seconds, 2),
            }
        )
    return out
