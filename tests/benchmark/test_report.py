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
