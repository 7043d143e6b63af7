"""Image preprocessing: shapes, exact values, torchvision's resize/crop arithmetic, and bad image files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resnet_deploy.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, load_image, resize_plan
from resnet_deploy.errors import UserError
from resnet_deploy.info import ModelInfo

IMAGENET = ModelInfo(arch="resnet50")  # 3 x 224, normalisation left to the caller
FMNIST = ModelInfo(arch="resnet20", in_channels=1, input_size=28, mean=[0.286], std=[0.353], num_classes=10)


def test_small_grey_png_is_exact(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    Image.fromarray(pixels, mode="L").save(tmp_path / "a.png")
    x = load_image(tmp_path / "a.png", FMNIST)
    assert x.shape == (1, 28, 28) and x.dtype == np.float32
    # no resize, no normalisation (the model normalises inside): exactly pixels / 255
    np.testing.assert_array_equal(x[0], pixels.astype(np.float32) / np.float32(255.0))


def test_small_model_resizes_straight(tmp_path: Path) -> None:
    Image.new("RGB", (90, 40), (10, 200, 30)).save(tmp_path / "a.png")
    x = load_image(tmp_path / "a.png", FMNIST)
    assert x.shape == (1, 28, 28)
    grey = np.asarray(Image.new("RGB", (1, 1), (10, 200, 30)).convert("L"))[0, 0] / 255.0
    np.testing.assert_allclose(x, grey, atol=1e-6)


def test_imagenet_constant_colour_is_normalised(tmp_path: Path) -> None:
    Image.new("RGB", (500, 375), (255, 0, 128)).save(tmp_path / "a.png")
    x = load_image(tmp_path / "a.png", IMAGENET)
    assert x.shape == (3, 224, 224) and x.dtype == np.float32
    for c, v in enumerate((255, 0, 128)):
        np.testing.assert_allclose(x[c], (v / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c], atol=1e-5)


def test_in_graph_normalisation_is_not_repeated(tmp_path: Path) -> None:
    Image.new("RGB", (300, 300), (255, 0, 128)).save(tmp_path / "a.png")
    info = ModelInfo(arch="resnet50", mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))
    x = load_image(tmp_path / "a.png", info)
    np.testing.assert_allclose(x[:, 100, 100], [1.0, 0.0, 128 / 255.0], atol=1e-6)


def test_grey_model_without_mean_is_not_normalised(tmp_path: Path) -> None:
    Image.new("L", (28, 28), 255).save(tmp_path / "a.png")
    info = ModelInfo(arch="resnet20", in_channels=1, input_size=28)
    assert load_image(tmp_path / "a.png", info).max() == 1.0


def test_resize_plan_matches_torchvision() -> None:
    # torchvision Resize(256): shorter side 256, longer int(256 * long / short); CenterCrop: int(round((d - 224) / 2))
    assert resize_plan(500, 375, 224) == ((341, 256), (58, 16, 282, 240))
    assert resize_plan(375, 500, 224) == ((256, 341), (16, 58, 240, 282))
    assert resize_plan(256, 256, 224) == ((256, 256), (16, 16, 240, 240))
    assert resize_plan(640, 480, 299) == ((456, 342), (78, 22, 377, 321))  # round(299 / 0.875) = 342; 78.5 -> 78
    assert resize_plan(100, 50, 28) == ((28, 28), None)


def test_center_crop_offsets(tmp_path: Path) -> None:
    # 256 x 256: no resize; column j holds value j, row i holds value i: the crop must start at (16, 16)
    ramp = np.arange(256, dtype=np.uint8)
    img = np.stack([np.tile(ramp, (256, 1)), np.tile(ramp[:, None], (1, 256)), np.zeros((256, 256), np.uint8)], -1)
    Image.fromarray(img, mode="RGB").save(tmp_path / "ramp.png")
    info = ModelInfo(arch="resnet50", mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0])  # keep raw [0, 1] values
    x = load_image(tmp_path / "ramp.png", info)
    np.testing.assert_allclose(x[0, 0, :3] * 255, [16, 17, 18], atol=1e-4)
    np.testing.assert_allclose(x[1, :3, 0] * 255, [16, 17, 18], atol=1e-4)
    assert round(float(x[0, 0, -1] * 255)) == 239


@pytest.mark.parametrize("mode", ["RGBA", "P", "LA", "I;16", "CMYK"])
def test_other_modes_convert(tmp_path: Path, mode: str) -> None:
    img = Image.new("RGB", (64, 48), (40, 80, 120)).convert(mode)
    suffix = ".jpg" if mode == "CMYK" else ".png"
    img.save(tmp_path / f"a{suffix}")
    assert load_image(tmp_path / f"a{suffix}", IMAGENET).shape == (3, 224, 224)
    assert load_image(tmp_path / f"a{suffix}", FMNIST).shape == (1, 28, 28)


def test_jpeg(tmp_path: Path) -> None:
    Image.new("RGB", (320, 240), (0, 128, 255)).save(tmp_path / "a.jpg", quality=95)
    x = load_image(tmp_path / "a.jpg", IMAGENET)
    assert x.shape == (3, 224, 224)
    expected = [(v / 255 - m) / s for v, m, s in zip((0, 128, 255), IMAGENET_MEAN, IMAGENET_STD, strict=True)]
    np.testing.assert_allclose(x[:, 112, 112], expected, atol=0.05)


def test_not_an_image(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_text("hello, not a JPEG")
    with pytest.raises(UserError, match="not an image"):
        load_image(tmp_path / "a.jpg", IMAGENET)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated(tmp_path: Path, fmt: str) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    whole = tmp_path / "whole.img"
    Image.fromarray(pixels).save(whole, format=fmt)
    data = whole.read_bytes()
    (tmp_path / "cut.img").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="corrupt or truncated"):
        load_image(tmp_path / "cut.img", IMAGENET)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        load_image(tmp_path / "nope.png", IMAGENET)


def test_unsupported_channels(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    with pytest.raises(UserError, match="4 input channels"):
        load_image(tmp_path / "a.png", ModelInfo(arch="resnet18", in_channels=4, input_size=64))


# --- bit depths and formats shared by calibration and evaluation ---------------------------------------------------


def test_16_bit_grey_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    """A 16-bit copy of an 8-bit image (each level v stored as v * 257) preprocesses to the same values; clipping
    at 255 (what Pillow's convert("L") does) turned every pixel above level 0 into white."""
    pixels = np.random.default_rng(3).integers(0, 256, (28, 28), dtype=np.uint8)
    Image.fromarray(pixels, mode="L").save(tmp_path / "8.png")
    Image.fromarray(pixels.astype(np.uint16) * 257).save(tmp_path / "16.png")
    assert Image.open(tmp_path / "16.png").mode == "I;16"
    np.testing.assert_array_equal(load_image(tmp_path / "16.png", FMNIST), load_image(tmp_path / "8.png", FMNIST))
    # resized and replicated for an ImageNet model: within one level of the 8-bit path (which rounds to uint8)
    np.testing.assert_allclose(
        load_image(tmp_path / "16.png", IMAGENET), load_image(tmp_path / "8.png", IMAGENET), atol=1.01 / 255 / 0.224
    )


@pytest.mark.parametrize("suffix", [".bmp", ".webp", ".BMP"])
def test_bmp_and_webp_are_read(tmp_path: Path, suffix: str) -> None:
    Image.new("RGB", (28, 28), (51, 102, 153)).save(
        tmp_path / f"a{suffix}", **({"lossless": True} if "webp" in suffix else {})
    )
    x = load_image(tmp_path / f"a{suffix}", ModelInfo(arch="resnet18", input_size=28, mean=[0.0] * 3, std=[1.0] * 3))
    np.testing.assert_allclose(x[:, 5, 5], [0.2, 0.4, 0.6], atol=1e-6)
