"""Groups of targets that share architecture and weights: each group's FP32 reference, and ratios to it."""

from __future__ import annotations

from typing import Any

from ..info import ModelInfo


def group_key(info: ModelInfo | None) -> str | None:
    """Architecture + weights identity: bundled name (or arch) with the classes and input size."""
    if info is None:
        return None
    base = info.name or info.arch
    return f"{base}@{info.input_size}" if info.name else f"{base}@{info.input_size}/{info.num_classes}"


def reference_label(targets_or_rows: list[Any], group: str | None) -> str | None:
    """The FP32 reference of a group: ONNX Runtime FP32 if present, else PyTorch FP32, else any FP32."""
    if group is None:
        return None

    def get(x: Any, key: str) -> Any:
        return x[key] if isinstance(x, dict) else getattr(x, key)

    fp32 = [x for x in targets_or_rows if get(x, "group") == group and get(x, "precision") == "fp32"]
    for backend in ("onnxruntime", "pytorch"):
        for x in fp32:
            if get(x, "backend") == backend:
                return str(get(x, "label") if not isinstance(x, dict) else x["model"])
    if fp32:
        x = fp32[0]
        return str(get(x, "label") if not isinstance(x, dict) else x["model"])
    return None


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Give each row its median-latency and throughput ratio to its group's FP32 reference at the same batch."""
    for row in rows:
        ref_name = reference_label(rows, row.get("group"))
        if ref_name is None:
            continue
        ref = next((r for r in rows if r["model"] == ref_name and r["batch"] == row["batch"]), None)
        if ref is None:
            continue
        row["vs_reference"] = {
            "reference": ref_name,
            "median_latency_ratio": round(row["latency_ms"]["median"] / ref["latency_ms"]["median"], 4),
            # read the usual way: 2.0 = twice as fast as the reference (its median latency over this row's)
            "speedup": round(ref["latency_ms"]["median"] / row["latency_ms"]["median"], 4)
            if row["latency_ms"]["median"]
            else None,
            "throughput_ratio": round(row["throughput_ips"] / ref["throughput_ips"], 4)
            if ref["throughput_ips"]
            else None,
        }


def group_rows(rows: list[dict[str, Any]], order: list[str]) -> None:
    """Sort ``rows`` in place so each model's rows (every batch) are together, models of one group (same weights)
    next to each other, in the order the models were given (``order``: target labels); batches ascending."""
    index = {label: i for i, label in enumerate(order)}
    first: dict[str, int] = {}
    for r in rows:
        key = r.get("group") or r["model"]
        first[key] = min(first.get(key, len(order)), index.get(r["model"], len(order)))
    rows.sort(key=lambda r: (first[r.get("group") or r["model"]], index.get(r["model"], len(order)), r["batch"]))
