"""README's "Python" section runs as written (issue 16): every ```python block, in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(section: str = "Python") -> list[str]:
    text = README.read_text()
    match = re.search(rf"^## {section}\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, f"README has no '## {section}' section"
    return re.findall(r"^```python\n(.*?)^```", match.group(1), re.S | re.M)


def test_python_section_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    from resnet_deploy.data import open_dataset

    blocks = python_blocks()
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)
    # the image files the section names: real Fashion-MNIST test images (a shirt and an ankle boot)
    x, y = open_dataset("fashion-mnist:test").take(200)
    for name, label in (("shirt.png", 6), ("boot.png", 9)):
        i = int(np.flatnonzero(y == label)[0])
        Image.fromarray(np.round(x[i, 0] * 255).astype(np.uint8)).save(name)
    namespace: dict[str, object] = {"__name__": "readme"}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 -- the README's own code
    assert namespace["logits"].shape == (8, 10)  # type: ignore[attr-defined]
    assert namespace["one"].shape == (1, 10)  # type: ignore[attr-defined]
    assert (tmp_path / "net_int8.onnx").is_file()
    labels = namespace["model"].info.labels  # type: ignore[attr-defined]
    predicted = namespace["model"].predict(namespace["batch"]).argmax(axis=1)  # type: ignore[attr-defined]
    assert [labels[i] for i in predicted] == ["Shirt", "Ankle boot"]  # the bundled model gets these two right
