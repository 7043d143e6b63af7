"""Arrays on disk: declared sizes checked before allocating, rows read a batch at a time, compressed data streamed.

Each memory bound is measured with tracemalloc (numpy and zlib report their buffers to it) on real files the test
writes, so it holds whatever the machine's speed or load.
"""

from __future__ import annotations

import gzip
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from resnet_deploy.data import open_dataset
from resnet_deploy.errors import UserError
from resnet_deploy.info import ModelInfo

FMNIST = ModelInfo(arch="resnet20", num_classes=10, in_channels=1, input_size=28, mean=[0.286], std=[0.353])
MB = 1 << 20


def peak_bytes(fn: Callable[[], Any]) -> tuple[Any, int]:
    """(result or raised UserError, peak traced bytes) of ``fn()``."""
    tracemalloc.start()
    try:
        try:
            result: Any = fn()
        except UserError as exc:
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def npy_header(shape: tuple[int, ...], descr: str = "|u1") -> bytes:
    text = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    text += b" " * (63 - (len(text) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text


def zeros(total: int, chunk: int = 16 * MB) -> Iterator[bytes]:
    block = bytes(chunk)
    while total > 0:
        yield block[: min(chunk, total)]
        total -= chunk


def write_deflated_npz(path: Path, x_shape: tuple[int, ...], n_labels: int) -> None:
    """A .npz whose x (zeros, uint8) is deflated as it is written: a few hundred kB that inflate to ``x_shape``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("x.npy", "w", force_zip64=True) as f:
            f.write(npy_header(x_shape))
            for block in zeros(int(np.prod(x_shape))):
                f.write(block)
        with zf.open("y.npy", "w") as f:
            f.write(npy_header((n_labels,), "<i8") + np.zeros(n_labels, np.int64).tobytes())


def test_npy_header_claiming_terabytes_is_refused(tmp_path: Path) -> None:
    from resnet_deploy.data.arrays import open_npy

    path = tmp_path / "tb.npy"
    path.write_bytes(npy_header((10**9, 3, 224, 224)) + bytes(1000))
    with pytest.raises(UserError, match=r"tb.npy declares 150.5 TB of data, over the 1 TiB cap"):
        open_npy(path)
    path.write_bytes(npy_header((1000, 3, 224, 224)) + bytes(1000))  # below the cap, but not in the file
    with pytest.raises(UserError, match=r"header says \(1000, 3, 224, 224\) uint8 \(150.5 MB\) but the file holds"):
        open_npy(path)
    ds, peak = peak_bytes(lambda: open_dataset(str(path), FMNIST, need_labels=False))
    assert isinstance(ds, UserError) and peak < MB


def test_npz_member_claiming_terabytes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tb.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x.npy", npy_header((10**12, 28, 28)) + bytes(64))
        zf.writestr("y.npy", npy_header((2,), "<i8") + bytes(16))
    result, peak = peak_bytes(lambda: open_dataset(str(path), FMNIST))
    assert isinstance(result, UserError) and "declares 784.0 TB of data" in str(result)
    assert peak < MB


def test_npz_header_and_zip_entry_disagree(tmp_path: Path) -> None:
    from resnet_deploy.data.arrays import open_npz

    path = tmp_path / "short.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x.npy", npy_header((10, 28, 28)) + bytes(100))
        zf.writestr("y.npy", npy_header((10,), "<i8") + bytes(80))
    with pytest.raises(UserError, match=r"short.npz\[x\]: header says \(10, 28, 28\) uint8"):
        open_npz(path)


def test_deflated_npz_with_limit_reads_only_the_limit(tmp_path: Path) -> None:
    """A 400 kB .npz that inflates to 400 MB: reading 100 images (what eval --limit 100 reads) costs about 100
    images of memory, not the whole array; np.load read all of x first."""
    path = tmp_path / "big.npz"
    n = 400 * MB // (28 * 28)
    write_deflated_npz(path, (n, 28, 28), n)
    assert path.stat().st_size < 2 * MB

    def first_100() -> int:
        ds = open_dataset(str(path), FMNIST)
        assert len(ds) == n
        return sum(len(x) for x, _ in ds.batches(50, limit=100))

    count, peak = peak_bytes(first_100)
    assert count == 100
    assert peak < 12 * MB + n * 8 * 2  # the labels (read whole, n int64) and a few MB of zlib buffers


def test_streaming_reads_the_whole_array_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.npz"
    n = 64 * MB // (28 * 28)
    write_deflated_npz(path, (n, 28, 28), n)

    def all_batches() -> int:
        ds = open_dataset(str(path), FMNIST)
        total = 0
        for x, _ in ds.batches(1000):
            assert x.shape[1:] == (1, 28, 28) and float(x.max()) == 0.0
            total += len(x)
        return total

    count, peak = peak_bytes(all_batches)
    assert count == n
    # the labels, one batch of float32 (3 MB) and its raw rows; not the 64 MB of pixels, nor 256 MB of floats
    assert peak < 24 * MB + n * 8


def test_rows_out_of_order_and_reopened(tmp_path: Path) -> None:
    from resnet_deploy.data.arrays import open_npy, open_npz

    x = np.arange(10 * 4, dtype=np.uint8).reshape(10, 4)
    np.savez_compressed(tmp_path / "d.npz", x=x)
    arr = open_npz(tmp_path / "d.npz")["x"]
    np.testing.assert_array_equal(arr.rows(6, 8), x[6:8])
    np.testing.assert_array_equal(arr.rows(1, 3), x[1:3])  # backwards: reopens
    np.testing.assert_array_equal(arr.rows(8, 99), x[8:])
    np.save(tmp_path / "d.npy", x)
    plain = open_npy(tmp_path / "d.npy")
    np.testing.assert_array_equal(plain.rows(3, 5), x[3:5])
    np.testing.assert_array_equal(plain.rows(0, 10), x)


@pytest.mark.parametrize(
    "header, message",
    [
        (b"\x93NUMPX\x01\x00", "bad magic"),
        (b"\x93NUMPY\x09\x00", "unsupported .npy format version 9"),
        (b"\x93NUMPY\x01\x00\xff\xff" + b" " * 10, "header of 65535 bytes is too long"),
        (npy_header((2, 2), "|O"), "pickled objects"),
        (npy_header((-2, 2)), "negative dimension"),
        (b"\x93NUMPY\x01\x00\x10\x00{'descr': 1+}   \n", "malformed .npy header"),
    ],
)
def test_npy_bad_headers(tmp_path: Path, header: bytes, message: str) -> None:
    from resnet_deploy.data.arrays import open_npy

    (tmp_path / "bad.npy").write_bytes(header + bytes(8))
    with pytest.raises(UserError, match=message):
        open_npy(tmp_path / "bad.npy")


def test_npy_is_calibration_data_not_evaluation_data(tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    ds = open_dataset(str(tmp_path / "x.npy"), FMNIST, need_labels=False)
    assert not ds.has_labels and len(ds) == 5 and ds.sample_shape == (1, 28, 28)
    got, y = ds.take(5)
    np.testing.assert_array_equal(got[:, 0], x.astype(np.float32) / np.float32(255))
    assert y.tolist() == [-1] * 5
    with pytest.raises(UserError, match="holds images without labels: give a .npz with x and y"):
        open_dataset(str(tmp_path / "x.npy"), FMNIST)
    # an .npz without y is calibration data too
    np.savez(tmp_path / "x.npz", x=x)
    assert len(open_dataset(str(tmp_path / "x.npz"), FMNIST, need_labels=False)) == 5
    with pytest.raises(UserError, match="lacks array 'y'"):
        open_dataset(str(tmp_path / "x.npz"), FMNIST)


def test_gzip_stream_of_many_members(tmp_path: Path) -> None:
    """gzip files may hold several members back to back; the reader streams through all of them."""
    x = np.arange(6 * 4, dtype=np.uint8).reshape(6, 4)
    raw = bytes([0, 0, 8, 2]) + (6).to_bytes(4, "big") + (4).to_bytes(4, "big") + x.tobytes()
    (tmp_path / "m.idx.gz").write_bytes(gzip.compress(raw[:15]) + gzip.compress(raw[15:]))
    from resnet_deploy.data.idx import open_idx

    np.testing.assert_array_equal(open_idx(tmp_path / "m.idx.gz").rows(0, 6), x)
