"""The benchmark data model: batch lists and configuration checks."""

from __future__ import annotations

import pytest

from resnet_deploy.benchmark import (
    BenchConfig,
    parse_batches,
)
from resnet_deploy.errors import UserError


@pytest.mark.parametrize("text,want", [("1,8,32", [1, 8, 32]), ("8, 1,8", [1, 8]), ("4", [4])])
def test_parse_batches(text: str, want: list[int]) -> None:
    assert parse_batches(text) == want


@pytest.mark.parametrize("text", ["", "0", "1,a", "1,,2", "-1", "1.5", "8;16"])
def test_parse_batches_rejects(text: str) -> None:
    with pytest.raises(UserError, match="bad batch list"):
        parse_batches(text)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"duration_s": 0.0}, "--duration"),
        ({"duration_s": -1.0}, "--duration"),
        ({"duration_s": float("nan")}, "--duration"),
        ({"duration_s": float("inf")}, "--duration"),
        ({"warmup_ms": -5.0}, "--warmup"),
        ({"min_iterations": 0}, "--min-iterations"),
        ({"threads": 0}, "--threads"),
        ({"batches": []}, "no batch sizes"),
        ({"batches": [0]}, "positive"),
    ],
)
def test_config_rejects(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(UserError, match=match):
        BenchConfig(**kwargs).validate()  # type: ignore[arg-type]
