"""The --residual-fusion auto decision from two engine timings."""

from __future__ import annotations

import pytest

from resnet_deploy.backends.tensorrt import plugin as plug


def test_auto_choice_prefers_the_faster_engine_and_native_on_ties() -> None:
    native = plug.EngineTiming("n.engine", 1.00, 1.01, 0.98, 100, {"input": (8, 3, 224, 224)})
    faster = plug.EngineTiming("p.engine", 0.90, 0.91, 0.89, 110, {"input": (8, 3, 224, 224)})
    slower = plug.EngineTiming("p.engine", 1.20, 1.21, 1.19, 90, {"input": (8, 3, 224, 224)})
    tie = plug.EngineTiming("p.engine", 1.00, 1.00, 1.00, 100, {"input": (8, 3, 224, 224)})
    record = plug.residual_fusion_choice(native, faster)
    assert record["residual_fusion"] == "plugin" and record["engine"] == "p.engine"
    assert record["plugin_speedup"] == pytest.approx(1.0 / 0.9, rel=1e-3)
    assert record["input_shapes"] == {"input": [8, 3, 224, 224]}
    assert plug.residual_fusion_choice(native, slower)["residual_fusion"] == "native"
    assert plug.residual_fusion_choice(native, tie)["engine"] == "n.engine"
