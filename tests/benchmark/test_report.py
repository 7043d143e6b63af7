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
