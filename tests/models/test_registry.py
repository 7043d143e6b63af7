"""The registry is torch-free and its layouts are the ones the networks are built from."""

from __future__ import annotations

import subprocess
import sys

import pytest

from resnet_deploy.errors import UserError
from resnet_deploy.models.registry import ARCHITECTURES, get_arch, parameter_count


def test_importing_the_registry_needs_no_torch() -> None:
    code = "import sys, resnet_deploy.models.registry as r; r.parameter_count('resnet50')\n"
    code += "assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("arch", ["resnet18", "resnet50", "resnet20", "resnet50_small"])
def test_the_layout_is_what_gets_built(arch: str) -> None:
    """Blocks per stage in the spec equal the blocks of the constructed network."""
    spec = get_arch(arch)
    net = spec.build(spec.default_num_classes, 3)
    stages = [m for name, m in net.named_children() if name.startswith("layer")]
    assert tuple(len(s) for s in stages) == (spec.layers * 3 if spec.family == "cifar" else spec.layers)
    assert sum(p.numel() for p in net.parameters()) == parameter_count(arch)


def test_unknown_architecture_lists_the_known_ones() -> None:
    with pytest.raises(UserError, match="known: resnet18"):
        get_arch("resnet19")
    assert set(ARCHITECTURES) >= {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet20"}
