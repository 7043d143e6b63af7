"""IDX reader: real files round-trip; corrupt, truncated and inconsistent files give one-line UserErrors."""

from __future__ import annotations

import gzip
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from resnet_deploy.data.idx import FASHION_MNIST_DIR, load_fashion_mnist, read_idx
from resnet_deploy.errors import UserError


def idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    header = bytes([0, 0, code, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.tobytes()


@pytest.mark.parametrize("compress", [False, True])
def test_round_trip(tmp_path: Path, compress: bool) -> None:
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = idx_bytes(arr)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    path.write_bytes(gzip.compress(data) if compress else data)
    out = read_idx(path)
    assert out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, arr)


def test_big_endian_int32(tmp_path: Path) -> None:
    arr = np.array([1, -2, 70000], dtype=">i4")
    (tmp_path / "b.idx").write_bytes(idx_bytes(arr, 0x0C))
    np.testing.assert_array_equal(read_idx(tmp_path / "b.idx"), [1, -2, 70000])


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "bad magic"),
        (b"\x00\x00", "bad magic"),
        (b"\x01\x00\x08\x01" + (3).to_bytes(4, "big") + b"abc", "bad magic"),
        (b"\x00\x00\x07\x01" + (3).to_bytes(4, "big") + b"abc", "bad magic"),  # unknown type code
        (b"\x00\x00\x08\x03" + (3).to_bytes(4, "big"), "truncated IDX header"),
        (b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"abc", "IDX header says (5,)"),  # data too short
        (b"\x00\x00\x08\x01" + (2).to_bytes(4, "big") + b"abc", "holds 3 data bytes"),  # data too long
    ],
)
def test_corrupt(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "bad.idx"
    path.write_bytes(data)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_idx(path)


def test_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "bad.idx.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((10, 10), np.uint8)))[:20])
    with pytest.raises(UserError, match="cannot read IDX file"):
        read_idx(path)
    path.write_bytes(b"not gzip at all")
    with pytest.raises(UserError, match="cannot read IDX file"):
        read_idx(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot read IDX file"):
        read_idx(tmp_path / "nope.idx")


def _write_split(root: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    (root / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (root / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))


def test_load_fashion_mnist_from_root(tmp_path: Path) -> None:
    images = np.full((3, 28, 28), 255, np.uint8)
    images[1] = 51
    _write_split(tmp_path, "t10k", images, np.array([0, 9, 4], np.uint8))
    x, y = load_fashion_mnist("test", tmp_path)
    assert x.shape == (3, 1, 28, 28) and x.dtype == np.float32
    assert y.dtype == np.int64 and y.tolist() == [0, 9, 4]
    assert x[0].min() == 1.0 and x[1].max() == pytest.approx(0.2)


def test_load_fashion_mnist_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown Fashion-MNIST split"):
        load_fashion_mnist("validation", tmp_path)
    with pytest.raises(UserError, match="Fashion-MNIST not found"):
        load_fashion_mnist("train", tmp_path)
    _write_split(tmp_path, "train", np.zeros((3, 28, 28), np.uint8), np.zeros(2, np.uint8))
    with pytest.raises(UserError, match="inconsistent shapes"):
        load_fashion_mnist("train", tmp_path)


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist() -> None:
    x, y = load_fashion_mnist("test")
    assert x.shape == (10000, 1, 28, 28) and y.shape == (10000,)
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert np.bincount(y).tolist() == [1000] * 10


# --- hostile and large files (#14: bounded memory, declared sizes checked first) ----------------------------------


def _traced_peak(fn: Callable[[], object]) -> tuple[object, int]:
    tracemalloc.start()
    try:
        try:
            result = fn()
        except UserError as exc:
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _gzip_zeros(header: bytes, total: int) -> bytes:
    """``header`` then ``total`` zero bytes as a gzip file of concatenated members: about 1 kB per MB."""
    block = gzip.compress(bytes(1 << 24), compresslevel=9)  # 16 MB of zeros in ~16 kB
    count, rest = divmod(total, 1 << 24)
    return gzip.compress(header) + block * count + gzip.compress(bytes(rest))


def test_gzip_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    """A ~600 kB gzip IDX whose header claims 9.2 GB: refused before decompressing; the old reader inflated the
    whole stream into memory (600 MB here) before comparing sizes."""
    n = 9_200_000_000 // (28 * 28)
    header = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (n, 28, 28))
    path = tmp_path / "bomb-idx3-ubyte.gz"
    path.write_bytes(_gzip_zeros(header, 600 << 20))
    assert path.stat().st_size < 1 << 20
    result, peak = _traced_peak(lambda: read_idx(path))
    assert isinstance(result, UserError)
    assert "IDX header says (11734693, 28, 28) (9.2 GB), over the 1 GiB an IDX file may hold" in str(result)
    assert peak < 1 << 20


def test_limit_reads_only_the_rows_asked_for(tmp_path: Path) -> None:
    """A 200 MB (declared and real) image file behind 200 kB of gzip: 100 images cost about 100 images."""
    n = (200 << 20) // (28 * 28)
    header = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (n, 28, 28))
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(_gzip_zeros(header, n * 28 * 28))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(n, np.uint8))))
    result, peak = _traced_peak(lambda: load_fashion_mnist("train", tmp_path, limit=100))
    assert not isinstance(result, UserError)
    x, y = result  # type: ignore[misc]
    assert x.shape == (100, 1, 28, 28) and y.shape == (100,)
    assert peak < n * 8 + (4 << 20)  # the labels (int64) and zlib's buffers; the images alone are 200 MB


def test_float_pixels_must_be_finite(tmp_path: Path) -> None:
    arr = np.zeros((2, 3), ">f4")
    arr[1, 2] = np.nan
    (tmp_path / "f.idx").write_bytes(idx_bytes(arr, 0x0D))
    with pytest.raises(UserError, match="holds NaN or infinite values"):
        read_idx(tmp_path / "f.idx")


def test_fashion_mnist_pixels_must_be_uint8(tmp_path: Path) -> None:
    images = np.full((3, 28, 28), np.inf, ">f4")
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images, 0x0D)))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(3, np.uint8))))
    with pytest.raises(UserError, match="Fashion-MNIST pixels must be uint8, not >f4"):
        load_fashion_mnist("test", tmp_path)


def test_absurd_dimension_count(tmp_path: Path) -> None:
    (tmp_path / "d.idx").write_bytes(bytes([0, 0, 8, 255]) + bytes(4 * 255))
    with pytest.raises(UserError, match="claims 255 dimensions") as info:
        read_idx(tmp_path / "d.idx")
    assert len(str(info.value)) < 200
