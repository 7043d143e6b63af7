"""Accuracy in the benchmark report: top-1/top-5 of every target and top-1 agreement with its group's FP32 model."""

from __future__ import annotations

from typing import Any

from ..data.datasets import open_dataset
from ..errors import UserError
from ..evaluate import evaluate
from .groups import reference_label
from .spec import BenchConfig, Target


def evaluate_targets(targets: list[Target], config: BenchConfig) -> list[dict[str, Any]]:
    """One accuracy record per target, in target order."""
    if config.data is None:
        return []
    by_label = {t.label: t for t in targets}
    out: list[dict[str, Any]] = []
    for t in targets:
        if not t.evaluate:
            continue
        dataset = open_dataset(config.data, t.model.info)
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
