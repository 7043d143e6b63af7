"""Dataset specs: ImageNet-style folders, .npz files and Fashion-MNIST, and the one-line error for every bad spec."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resnet_deploy.data import FolderDataset, open_dataset
from resnet_deploy.data.idx import FASHION_MNIST_DIR
from resnet_deploy.errors import UserError
from resnet_deploy.info import ModelInfo

SMALL_RGB = ModelInfo(arch="resnet18", num_classes=3, in_channels=3, input_size=32, mean=[0.5] * 3, std=[0.5] * 3)
FMNIST = ModelInfo(arch="resnet20", num_classes=10, in_channels=1, input_size=28, mean=[0.286], std=[0.353])
needs_fmnist = pytest.mark.skipif(
    not FASHION_MNIST_DIR.is_dir(), reason="Debian package dataset-fashion-mnist not installed"
)


def make_folder(root: Path) -> Path:
    """Three classes, created out of order, mixing PNG and JPEG; each image is one flat grey level."""
    layout = {"zebra": [200, 210], "ant": [10, 20, 30], "cat": [100]}
    for name, levels in layout.items():
        (root / name).mkdir(parents=True)
        for i, level in enumerate(levels):
            suffix = ".JPEG" if i % 2 else ".png"
            Image.new("RGB", (40 + i, 30), (level, level, level)).save(root / name / f"img{i}{suffix}", quality=100)
        (root / name / "notes.txt").write_text("not an image")
        (root / name / ".hidden.png").write_bytes(b"ignored")
    (root / ".cache").mkdir()
    (root / "README").write_text("stray file beside the class folders")
    return root


def test_folder_class_order_and_values(tmp_path: Path) -> None:
    ds = open_dataset(str(make_folder(tmp_path / "data")), SMALL_RGB)
    assert isinstance(ds, FolderDataset)
    assert ds.labels == ["ant", "cat", "zebra"] and ds.num_classes == 3
    assert len(ds) == 6 and ds.sample_shape == (3, 32, 32)
    batches = list(ds.batches(4))
    assert [b[0].shape for b in batches] == [(4, 3, 32, 32), (2, 3, 32, 32)]
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert y.tolist() == [0, 0, 0, 1, 2, 2]
    # in-graph normalisation: the values are the grey levels / 255 (JPEG at quality 100 is within 1 level)
    np.testing.assert_allclose(x.mean(axis=(1, 2, 3)) * 255, [10, 20, 30, 100, 200, 210], atol=1.5)


def test_folder_without_info_assumes_imagenet(tmp_path: Path) -> None:
    ds = open_dataset(str(make_folder(tmp_path / "data")))
    x, y = ds.take(1)
    assert x.shape == (1, 3, 224, 224)
    np.testing.assert_allclose(x[0, 0, 0, 0], (10 / 255 - 0.485) / 0.229, atol=1e-5)


def test_folder_subset_spreads_over_classes(tmp_path: Path) -> None:
    ds = open_dataset(str(make_folder(tmp_path / "data")), SMALL_RGB)
    _, y = ds.take(3)
    assert y.tolist() == [0, 0, 2]  # indices 0, 2, 4 of the class-sorted list
    assert sorted(set(np.concatenate([b[1] for b in ds.batches(2, limit=4)]).tolist())) == [0, 1, 2]
    assert len(ds.take(100)[1]) == 6


def test_folder_bad_image_is_reported(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "data")
    (root / "ant" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    ds = open_dataset(str(root), SMALL_RGB)
    with pytest.raises(UserError, match="broken.png"):
        list(ds.batches(8))


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        open_dataset(str(tmp_path / "missing"), SMALL_RGB)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="is empty"):
        open_dataset(str(tmp_path / "empty"), SMALL_RGB)
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (8, 8)).save(flat / "a.png")
    with pytest.raises(UserError, match="no class subfolders"):
        open_dataset(str(flat), SMALL_RGB)
    root = make_folder(tmp_path / "data")
    (root / "dog").mkdir()
    (root / "dog" / "a.txt").write_text("x")
    with pytest.raises(UserError, match=r"dog holds no images \(JPEG, PNG, BMP or WebP\)"):
        open_dataset(str(root), SMALL_RGB)


def test_folder_more_classes_than_model(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "data")
    info = ModelInfo(arch="resnet18", num_classes=2, in_channels=3, input_size=32)
    with pytest.raises(UserError, match="out of range for resnet18 with 2 classes"):
        open_dataset(str(root), info)


def test_unknown_specs(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        open_dataset(str(tmp_path / "nothing-here"))
    (tmp_path / "data.csv").write_text("1,2,3")
    with pytest.raises(UserError, match="unknown data spec"):
        open_dataset(str(tmp_path / "data.csv"))
    with pytest.raises(UserError, match="unknown Fashion-MNIST split"):
        open_dataset("fashion-mnist:validation")
    with pytest.raises(UserError, match="unknown Fashion-MNIST split"):
        open_dataset("fashion-mnist")


# --- .npz ---------------------------------------------------------------------------------------------------------


def test_npz_uint8_nhw_is_scaled(tmp_path: Path) -> None:
    x = np.full((5, 28, 28), 51, np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.array([0, 1, 2, 3, 9]))
    ds = open_dataset(str(tmp_path / "d.npz"), FMNIST)
    assert len(ds) == 5 and ds.sample_shape == (1, 28, 28) and ds.num_classes == 10
    xb, yb = ds.take(5)
    assert xb.dtype == np.float32 and xb.shape == (5, 1, 28, 28)
    np.testing.assert_allclose(xb, 0.2, atol=1e-7)
    assert yb.dtype == np.int64 and yb.tolist() == [0, 1, 2, 3, 9]


def test_npz_float_nchw_is_taken_as_is(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(7, 3, 32, 32))  # float64, already preprocessed
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(7) % 3, labels=np.array(["a", "b", "c"]))
    ds = open_dataset(str(tmp_path / "d.npz"), SMALL_RGB)
    assert ds.labels == ["a", "b", "c"]
    got = np.concatenate([b[0] for b in ds.batches(3)])
    np.testing.assert_array_equal(got, x.astype(np.float32))
    assert ds.take(2)[1].tolist() == [0, 1]  # the first n
    assert len(list(ds.batches(2, limit=5))) == 3


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"y": np.zeros(2, np.int64)}, "lacks array 'x'"),
        ({"x": np.zeros((2, 1, 28, 28), np.float32)}, "lacks array 'y'"),
        ({"images": np.zeros(2), "labels_": np.zeros(2)}, "lacks array 'x' and 'y'"),
        ({"x": np.zeros((2, 28 * 28), np.float32), "y": np.zeros(2, np.int64)}, "got shape \\(2, 784\\)"),
        ({"x": np.zeros((2, 1, 28, 28), np.float32), "y": np.zeros((2, 1), np.int64)}, "y must be a 1-D"),
        ({"x": np.zeros((3, 1, 28, 28), np.float32), "y": np.zeros(2, np.int64)}, "3 samples but y 2 labels"),
        ({"x": np.zeros((0, 1, 28, 28), np.float32), "y": np.zeros(0, np.int64)}, "holds no samples"),
        ({"x": np.zeros((2, 1, 28, 28), np.float32), "y": np.zeros(2, np.float32)}, "integer class labels"),
        ({"x": np.zeros((2, 1, 28, 28), np.float32), "y": np.array([0, -1])}, "negative label -1"),
        ({"x": np.zeros((2, 1, 28, 28), np.int32), "y": np.zeros(2, np.int64)}, "must be uint8 .* or float"),
        ({"x": np.zeros((2, 1, 28, 28), np.float32), "y": np.array([0, 10])}, "labels up to 10, out of range"),
        ({"x": np.zeros((2, 3, 28, 28), np.float32), "y": np.zeros(2, np.int64)}, "shape 3x28x28; resnet20 takes"),
        ({"x": np.zeros((2, 32, 32), np.uint8), "y": np.zeros(2, np.int64)}, "shape 1x32x32; resnet20 takes 1x28x28"),
        (
            {"x": np.zeros((2, 28, 28), np.uint8), "y": np.array([0, 3]), "labels": np.array(["a", "b"])},
            "names only 2 classes",
        ),
        ({"x": np.zeros((2, 28, 28), np.uint8), "y": np.zeros(2, np.int64), "labels": np.zeros(2)}, "class names"),
    ],
)
def test_npz_errors(tmp_path: Path, arrays: dict[str, np.ndarray], message: str) -> None:
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(UserError, match=message):
        open_dataset(str(tmp_path / "d.npz"), FMNIST)


@pytest.mark.parametrize(
    "x",
    [
        np.full((3, 1, 28, 28), np.nan, np.float32),
        np.full((3, 1, 28, 28), np.inf, np.float16),
        np.full((3, 1, 28, 28), 1e300, np.float64),  # finite in the file, infinite in float32
    ],
)
def test_npz_non_finite_values_are_refused_when_read(tmp_path: Path, x: np.ndarray) -> None:
    x[:1] = 0.5  # the first sample is fine: the error names the first bad one
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros(3, np.int64))
    ds = open_dataset(str(tmp_path / "d.npz"), FMNIST)
    assert ds.take(1)[0].max() == 0.5
    with pytest.raises(UserError, match=r"x\[1\] holds NaN or infinite values, or values beyond float32"):
        list(ds.batches(2))


def test_npz_pickled_objects_refused(tmp_path: Path) -> None:
    x = np.empty(2, dtype=object)
    x[0], x[1] = np.zeros((28, 28)), "payload"
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros(2, np.int64))
    with pytest.raises(UserError, match="pickled objects"):
        open_dataset(str(tmp_path / "d.npz"), FMNIST)


def test_npz_not_a_zip_and_missing(tmp_path: Path) -> None:
    (tmp_path / "d.npz").write_bytes(b"PK\x03\x04 this is no zip archive")
    with pytest.raises(UserError, match="not a valid .npz"):
        open_dataset(str(tmp_path / "d.npz"))
    with pytest.raises(UserError, match="not found"):
        open_dataset(str(tmp_path / "missing.npz"))


# --- Fashion-MNIST ------------------------------------------------------------------------------------------------


@needs_fmnist
def test_fashion_mnist_test_split() -> None:
    ds = open_dataset("fashion-mnist:test", FMNIST)
    assert len(ds) == 10000 and ds.num_classes == 10 and ds.sample_shape == (1, 28, 28)
    assert ds.labels is not None and ds.labels[9] == "Ankle boot"
    x, y = ds.take(16)
    assert x.shape == (16, 1, 28, 28) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    ys = np.concatenate([b[1] for b in ds.batches(4096)])
    assert np.bincount(ys).tolist() == [1000] * 10


@needs_fmnist
def test_fashion_mnist_adapted_to_rgb_model() -> None:
    plain = open_dataset("fashion-mnist:train")
    info = ModelInfo(arch="resnet18", num_classes=10, in_channels=3, input_size=32)  # caller-normalised RGB
    ds = open_dataset("fashion-mnist:train", info)
    assert ds.sample_shape == (3, 32, 32) and len(ds) == 60000
    x, y = ds.take(4)
    assert x.shape == (4, 3, 32, 32)
    assert y.tolist() == plain.take(4)[1].tolist()
    # grey replicated to RGB, then ImageNet normalisation: undoing it gives three equal channels
    mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
    std = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)
    raw = x * std + mean
    np.testing.assert_allclose(raw[:, 0], raw[:, 1], atol=1e-5)
    np.testing.assert_allclose(raw[:, 0], raw[:, 2], atol=1e-5)


@needs_fmnist
def test_fashion_mnist_errors() -> None:
    with pytest.raises(UserError, match="2 input channels"):
        open_dataset("fashion-mnist:test", ModelInfo(arch="resnet18", in_channels=2, input_size=28))
    with pytest.raises(UserError, match="out of range for resnet20 with 5 classes"):
        open_dataset("fashion-mnist:test", ModelInfo(arch="resnet20", num_classes=5, in_channels=1, input_size=28))


# --- the same images give the same input, whatever file they come in ----------------------------------------------


def test_uint8_npz_is_normalised_like_the_same_images_in_a_folder(tmp_path: Path) -> None:
    """A model that normalises outside its graph: a uint8 .npz got raw [0, 1] values, a folder ImageNet mean/std."""
    info = ModelInfo(arch="resnet18", num_classes=3, in_channels=3, input_size=32)  # caller normalises
    pixels = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    for i, img in enumerate(pixels):
        (tmp_path / "data" / f"c{i}").mkdir(parents=True)
        Image.fromarray(img).save(tmp_path / "data" / f"c{i}" / "a.png")
    np.savez(tmp_path / "d.npz", x=pixels.transpose(0, 3, 1, 2), y=np.arange(3))
    from_folder, _ = open_dataset(str(tmp_path / "data"), info).take(3)
    from_npz, _ = open_dataset(str(tmp_path / "d.npz"), info).take(3)
    np.testing.assert_array_equal(from_npz, from_folder)
    assert from_npz.min() < 0  # ImageNet mean/std applied
    # and a model that normalises inside its graph gets [0, 1] from both
    inside = ModelInfo(arch="resnet18", num_classes=3, in_channels=3, input_size=32, mean=[0.5] * 3, std=[0.5] * 3)
    a, _ = open_dataset(str(tmp_path / "data"), inside).take(3)
    b, _ = open_dataset(str(tmp_path / "d.npz"), inside).take(3)
    np.testing.assert_array_equal(a, b)
    assert b.min() >= 0


def test_uint16_npz_is_scaled(tmp_path: Path) -> None:
    x = np.full((2, 28, 28), 257 * 51, np.uint16)
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros(2, np.int64))
    np.testing.assert_allclose(open_dataset(str(tmp_path / "d.npz"), FMNIST).take(2)[0], 0.2, atol=1e-7)


def test_folder_reads_bmp_and_webp(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    Image.new("RGB", (32, 32), (10, 10, 10)).save(root / "a" / "x.bmp")
    Image.new("RGB", (32, 32), (20, 20, 20)).save(root / "b" / "y.webp", lossless=True)
    Image.new("RGB", (32, 32), (30, 30, 30)).save(root / "b" / "z.PNG")
    ds = open_dataset(str(root), SMALL_RGB)
    assert len(ds) == 3
    x, y = ds.take(3)
    assert y.tolist() == [0, 1, 1]
    np.testing.assert_allclose(x.mean(axis=(1, 2, 3)) * 255, [10, 20, 30], atol=1e-4)


@pytest.mark.parametrize("suffix", [".gif", ".tiff", ".TIF"])
def test_folder_refuses_image_formats_it_does_not_read(tmp_path: Path, suffix: str) -> None:
    root = make_folder(tmp_path / "data")
    Image.new("RGB", (8, 8)).save(root / "cat" / f"extra{suffix}")
    with pytest.raises(UserError, match=rf"extra{suffix}: \{suffix.lower()} images are not read"):
        open_dataset(str(root), SMALL_RGB)


def test_folder_counts_files_that_are_not_images(tmp_path: Path) -> None:
    ds = open_dataset(str(make_folder(tmp_path / "data")), SMALL_RGB)
    assert "ignored 3 files that are not images" in ds.describe()


@needs_fmnist
def test_fashion_mnist_is_read_a_batch_at_a_time() -> None:
    """Opening the training split and taking 512 images (what calibration reads) costs about 512 images: the old
    reader decoded all 60,000 into float32 (188 MB) plus two more copies."""
    import tracemalloc

    tracemalloc.start()
    try:
        ds = open_dataset("fashion-mnist:train", FMNIST)
        x, _ = ds.take(512)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert x.shape == (512, 1, 28, 28) and len(ds) == 60000
    assert peak < 8 << 20
