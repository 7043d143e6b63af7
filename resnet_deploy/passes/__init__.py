"""Graph passes: pure functions ``onnx.ModelProto -> (onnx.ModelProto, PassReport)`` that never mutate their input."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx


@dataclass
class PassReport:
    """What one pass changed: counters by kind, plus free-form notes (e.g. why a node was left alone)."""

    name: str
    changes: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(self.changes.values())

    def count(self, key: str, n: int = 1) -> None:
        self.changes[key] = self.changes.get(key, 0) + n

    def __str__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in self.changes.items()) or "no changes"
        return f"{self.name}: {counts}"

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "changes": dict(self.changes), "notes": list(self.notes)}


Pass = Callable[["onnx.ModelProto"], tuple["onnx.ModelProto", PassReport]]


def run_passes(model: onnx.ModelProto, passes: Sequence[Pass]) -> tuple[onnx.ModelProto, list[PassReport]]:
    """Apply ``passes`` in order; returns the final model and one report per pass."""
    reports = []
    for graph_pass in passes:
        model, report = graph_pass(model)
        reports.append(report)
    return model, reports
