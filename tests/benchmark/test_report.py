"""The report schema and its Markdown form."""

from __future__ import annotations

import pytest

from resnet_deploy.benchmark import (
    to_markdown,
    validate_report,
)


def test_schema_validation_catches_broken_reports() -> None:
    good = {
        "machine": {"cpu": "x"},
        "results": [
            {
                "model": "m",
                "backend": "onnxruntime",
                "precision": "fp32",
                "batch": 1,
                "latency_ms": dict(min=1, mean=2, median=2, p90=3, p95=3, p99=4, max=5),
                "throughput_ips": 10.0,
            }
        ],
    }
    validate_report(good)
    assert "| m | onnxruntime | fp32 | 1 |" in to_markdown(good)
    for broken in (
        {"results": []},
        {"machine": {}, "results": [{"model": "m"}]},
        {"machine": {}, "results": [{**good["results"][0], "latency_ms": {"min": 1}}]},  # type: ignore[dict-item]
        {"machine": {}, "results": [{**good["results"][0], "batch": 0}]},  # type: ignore[dict-item]
        {
            "machine": {},
            "results": [
                {**good["results"][0], "latency_ms": dict(min=3, mean=2, median=2, p90=3, p95=3, p99=4, max=5)}
            ],  # type: ignore[dict-item]
        },
    ):
        with pytest.raises(ValueError):
            validate_report(broken)


def test_plot_colours_follow_the_role() -> None:
    """Issue 16: one colour per role (fp32/fp16/int8/baseline), whatever the panel or file."""
    from resnet_deploy.benchmark.report import ROLE_COLOURS, role

    assert role({"model": "a", "precision": "int8", "role": "model"}) == "int8"
    assert role({"model": "b", "precision": "fp32", "role": "baseline"}) == "baseline"
    assert role({"model": "b", "precision": "fp32"}, {"b": "baseline"}) == "baseline"  # accuracy rows: by label
    assert role({"model": "c", "precision": "bf16"}) == "other"
    assert len(set(ROLE_COLOURS.values())) == len(ROLE_COLOURS)


def test_accuracy_axis_does_not_exaggerate_small_differences() -> None:
    """Issue 16: 92.54 vs 92.59 must not fill the axis: the window spans at least ten points, inside 0..100."""
    from resnet_deploy.benchmark.report import ACCURACY_SPAN, accuracy_limits

    lo, hi = accuracy_limits([92.54, 92.59, 92.45])
    assert hi - lo >= ACCURACY_SPAN and lo <= 92.45 and hi >= 92.59
    lo, hi = accuracy_limits([99.9, 99.95])
    assert hi == 100.0 and hi - lo >= ACCURACY_SPAN
    lo, hi = accuracy_limits([10.0, 95.0])  # a wide spread keeps every bar's top on the axis
    assert lo <= 10.0 and hi >= 95.0 and lo >= 0.0


def test_accuracy_bars_are_named_by_what_differs() -> None:
    """Ours and the peers share precision and backend: each bar keeps its own row name, less the panel's title."""
    from resnet_deploy.benchmark.report import bar_label

    group = "fmnist_resnet20@28 1t"
    assert bar_label("fmnist_resnet20 int8 openvino [1t]", group) == "int8 openvino"
    assert bar_label("fmnist_resnet20 int8 openvino (NNCF, not ours) [1t]", group) == "int8 openvino (NNCF, not ours)"
    assert bar_label("other", group) == "other"
