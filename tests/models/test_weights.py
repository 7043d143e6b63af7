"""Weight loading: every accepted container, and every way a weights file can be wrong."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from resnet_deploy.errors import UserError
from resnet_deploy.info import ModelInfo
from resnet_deploy.models import build_model
from resnet_deploy.models.weights import load_model, read_checkpoint, save_checkpoint

ARCH = "resnet20"  # the smallest network: these tests are about containers, not about size


@pytest.fixture(scope="module")
def reference(randomize_bn: Callable[..., torch.nn.Module]) -> torch.nn.Module:
    torch.manual_seed(0)
    return randomize_bn(build_model(ARCH, 10), seed=3).eval()


@pytest.fixture(scope="module")
def probe() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(x)


def assert_same_model(path: Path, reference: torch.nn.Module, arch: str | None = ARCH, skip: str = "\0") -> None:
    model, info = load_model(arch, path)
    assert info.arch == ARCH and info.num_classes == 10 and info.in_channels == 3
    assert not model.training
    got, want = model.state_dict(), reference.state_dict()
    assert list(got) == list(want)
    assert all(torch.equal(got[k], want[k]) for k in want if skip not in k), "a tensor was not loaded exactly"


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda sd: sd, id="plain"),
        pytest.param(lambda sd: {"state_dict": sd, "epoch": 90}, id="state_dict-key"),
        pytest.param(lambda sd: {"model": sd}, id="model-key"),
        pytest.param(lambda sd: {f"module.{k}": v for k, v in sd.items()}, id="module-prefix"),
        pytest.param(lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}}, id="wrapped-and-prefixed"),
    ],
)
@pytest.mark.parametrize("suffix", [".pth", ".pt"])
def test_torch_containers(tmp_path: Path, reference: torch.nn.Module, wrap, suffix: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / f"w{suffix}"
    torch.save(wrap(reference.state_dict()), path)
    assert_same_model(path, reference)


def test_old_checkpoint_without_num_batches_tracked(tmp_path: Path, reference: torch.nn.Module) -> None:
    state = {k: v for k, v in reference.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pth")
    assert_same_model(tmp_path / "old.pth", reference, skip="num_batches_tracked")  # a counter, unused in eval


def test_plain_safetensors(tmp_path: Path, reference: torch.nn.Module) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(tmp_path / "w.safetensors"))
    assert_same_model(tmp_path / "w.safetensors", reference)


def test_resnet_deploy_checkpoint_names_its_arch(tmp_path: Path, reference: torch.nn.Module) -> None:
    info = ModelInfo(arch=ARCH, num_classes=10, input_size=32, dataset="toy", labels=[f"c{i}" for i in range(10)])
    path = save_checkpoint(tmp_path / "ck.safetensors", reference, info)
    assert_same_model(path, reference, arch=None)  # no --arch needed
    _, meta = read_checkpoint(path)
    assert meta["arch"] == ARCH
    _, got = load_model(None, path)
    assert got.labels == info.labels and got.dataset == "toy"
    with pytest.raises(UserError, match="are for resnet20, not resnet32"):
        load_model("resnet32", path)
    with pytest.raises(UserError, match="10 classes, not 5"):
        load_model(None, path, num_classes=5)


def test_normalisation_inside_the_checkpoint(tmp_path: Path, reference: torch.nn.Module, probe: torch.Tensor) -> None:
    info = ModelInfo(arch=ARCH, num_classes=10, input_size=32, mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3])
    path = save_checkpoint(tmp_path / "norm.safetensors", reference, info)
    model, _ = load_model(None, path)
    mean = torch.tensor(info.mean).view(1, 3, 1, 1)
    std = torch.tensor(info.std).view(1, 3, 1, 1)
    torch.testing.assert_close(logits(model, probe), logits(reference, (probe - mean) / std))


def test_corrupt_pth(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.pth"
    path.write_bytes(b"\x80\x04this is not a pickle at all" * 10)
    with pytest.raises(UserError, match="cannot read .*corrupt.pth: corrupt, or not a plain state dict") as err:
        load_model(ARCH, path)
    assert "\n" not in str(err.value)


def test_truncated_pth(tmp_path: Path, reference: torch.nn.Module) -> None:
    full = tmp_path / "full.pth"
    torch.save(reference.state_dict(), full)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(UserError, match="cannot read"):
        load_model(ARCH, cut)


def test_corrupt_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\xff" * 64)
    with pytest.raises(UserError, match="corrupt or not a safetensors file"):
        load_model(ARCH, path)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(UserError, match="cannot read"):
        load_model(ARCH, tmp_path / "empty.pth")
    with pytest.raises(UserError, match="not found"):
        load_model(ARCH, tmp_path / "missing.pth")
    with pytest.raises(UserError, match="not a file"):
        load_model(ARCH, tmp_path)
    (tmp_path / "w.txt").write_text("hello")
    with pytest.raises(UserError, match="unsupported weights format"):
        load_model(ARCH, tmp_path / "w.txt")


class _Payload:
    """Unpickling this object creates ``marker``: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_not_executed(tmp_path: Path, reference: torch.nn.Module, writer: str) -> None:
    # First show the payload is live: plain pickle does execute it.
    live = tmp_path / "live-marker"
    pickle.loads(pickle.dumps(_Payload(live)))
    assert live.exists()

    marker = tmp_path / "marker"
    obj = {"state_dict": reference.state_dict(), "evil": _Payload(marker)}
    path = tmp_path / "evil.pth"
    if writer == "torch.save":
        torch.save(obj, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(obj, f)
    # torch.save's format names the blocked global; a bare pickle stops at the first opcode torch does not allow
    blocked = r"asks to import and call io.open while loading.*blocked" if writer == "torch.save" else "operand"
    with pytest.raises(UserError, match=f"cannot read .*evil.pth: .*{blocked}") as refused:
        load_model(ARCH, path)
    # torch's own message advises re-running with weights_only=False, which would run the payload
    assert "weights_only" not in str(refused.value)
    assert not marker.exists(), "loading the weights executed code from the file"


def test_pickle_that_is_not_a_state_dict(tmp_path: Path) -> None:
    torch.save([torch.zeros(3)], tmp_path / "list.pth")
    with pytest.raises(UserError, match="holds no state dict"):
        load_model(ARCH, tmp_path / "list.pth")
    torch.save({"conv1.weight": torch.zeros(3), "note": "hello"}, tmp_path / "mixed.pth")
    with pytest.raises(UserError, match="'note' is not a tensor"):
        load_model(ARCH, tmp_path / "mixed.pth")
    torch.save({}, tmp_path / "empty_dict.pth")
    with pytest.raises(UserError, match="holds no state dict"):
        load_model(ARCH, tmp_path / "empty_dict.pth")


def test_weights_for_another_arch(tmp_path: Path, reference: torch.nn.Module) -> None:
    torch.save(reference.state_dict(), tmp_path / "r20.pth")
    with pytest.raises(UserError) as err:
        load_model("resnet32", tmp_path / "r20.pth")
    msg = str(err.value)
    assert "do not fit resnet32" in msg and "missing: layer1.3.conv1.weight" in msg and "\n" not in msg
    with pytest.raises(UserError) as err:
        load_model("resnet18", tmp_path / "r20.pth")
    msg = str(err.value)
    for part in ("missing:", "unexpected:", "mis-shaped:", "conv1.weight (16, 3, 3, 3) vs (64, 3, 7, 7)"):
        assert part in msg


def test_mis_shaped_head(tmp_path: Path, reference: torch.nn.Module) -> None:
    torch.save(reference.state_dict(), tmp_path / "r20.pth")
    with pytest.raises(UserError, match=r"2 mis-shaped: fc.weight \(10, 64\) vs \(5, 64\), fc.bias \(10,\) vs \(5,\)$"):
        load_model(ARCH, tmp_path / "r20.pth", num_classes=5)


def test_class_count_and_channels_read_off_the_weights(tmp_path: Path) -> None:
    net = build_model("resnet18", 7, 1)
    torch.save(net.state_dict(), tmp_path / "w.pth")
    _, info = load_model("resnet18", tmp_path / "w.pth")
    assert (info.num_classes, info.in_channels, info.input_size) == (7, 1, 224)


def test_bad_sizes() -> None:
    for kwargs in ({"num_classes": 0}, {"in_channels": 0}, {"input_size": -1}):
        with pytest.raises(UserError, match="must be >= 1"):
            load_model(ARCH, None, **kwargs)
    with pytest.raises(UserError, match="--arch is required"):
        load_model(None, None)
