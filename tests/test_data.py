"""Tests of samtheory.data: IDX files, loaders, transforms and the install script.

Every file a loader reads here is written by the test itself (tiny IDX
files, fake CIFAR pickles), except the real Fashion-MNIST check, which runs
when the Debian files exist (and must run when SAMTHEORY_REQUIRE_DATASETS=1).
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import pickle
import random
import socket
import stat
import subprocess
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from samtheory.data import (
    FASHION_MNIST_DEFAULT_DIR,
    ArrayDataset,
    DataError,
    binary_subset,
    channel_stats,
    load_cifar,
    load_fashion_mnist,
    load_mnist1d,
    mnist1d_generation_args,
    num_noisy_labels,
    read_idx,
    standardize_images,
    synthetic_images,
    with_label_noise,
    write_idx,
)

REPO = Path(__file__).resolve().parents[1]
INSTALL_SCRIPT = REPO / "scripts" / "install_datasets.sh"
IDX_DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


def assert_names(err: pytest.ExceptionInfo, path: Path | str) -> None:
    assert str(path) in str(err.value), f"error does not name {path}: {err.value}"


# --------------------------------------------------------------------------
# IDX
# --------------------------------------------------------------------------


@given(
    array=st.sampled_from(IDX_DTYPES).flatmap(
        lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5))
    ),
    compressed=st.booleans(),
)
def test_idx_round_trip(array, compressed):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("a.idx.gz" if compressed else "a.idx")
        write_idx(path, array)
        assert (path.read_bytes()[:2] == b"\x1f\x8b") == compressed
        back = read_idx(path)
    assert back.dtype == array.dtype and back.dtype.isnative
    assert back.shape == array.shape
    assert back.flags.writeable
    np.testing.assert_array_equal(back, array)


def test_idx_header_bytes_and_big_endian_payload(tmp_path):
    path = tmp_path / "x.idx"
    write_idx(path, np.array([[1, 2, 3], [4, 5, 258]], dtype=np.int16))
    raw = path.read_bytes()
    # magic 00 00 0B(int16) 02(ndim), dims 2 and 3, then big-endian values
    assert raw[:12] == bytes.fromhex("00000b02" "00000002" "00000003")
    assert raw[12:] == bytes.fromhex("0001 0002 0003 0004 0005 0102".replace(" ", ""))


def test_idx_accepts_non_native_byte_order_and_gz_is_deterministic(tmp_path):
    values = np.arange(12, dtype=">i4").reshape(3, 4)
    write_idx(tmp_path / "a.gz", values)
    first = (tmp_path / "a.gz").read_bytes()
    write_idx(tmp_path / "a.gz", values.astype("<i4"))
    assert (tmp_path / "a.gz").read_bytes() == first
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), np.arange(12).reshape(3, 4))


@pytest.mark.parametrize(
    "array",
    [np.zeros(3, np.int64), np.zeros(3, bool), np.zeros(3, np.uint16), np.array(5, np.uint8)],
    ids=["int64", "bool", "uint16", "0-d"],
)
def test_write_idx_refuses_unstorable_arrays(tmp_path, array):
    with pytest.raises(ValueError, match="array"):
        write_idx(tmp_path / "x.idx", array)
    assert not (tmp_path / "x.idx").exists()


def _valid_idx(shape=(2, 3)) -> bytes:
    arr = np.arange(int(np.prod(shape)), dtype=np.uint8).reshape(shape)
    return bytes([0, 0, 8, len(shape)]) + np.asarray(shape, ">u4").tobytes() + arr.tobytes()


def _flip_byte(data: bytes, index: int) -> bytes:
    flipped = bytearray(data)
    flipped[index] ^= 0xFF
    return bytes(flipped)


CORRUPTIONS = {
    "empty": b"",
    "short magic": b"\x00\x00\x08",
    "bad magic": b"\x01\x00" + _valid_idx()[2:],
    "unknown type code": b"\x00\x00\x07" + _valid_idx()[3:],
    "zero dimensions": b"\x00\x00\x08\x00",
    "truncated dims": _valid_idx()[:9],
    "short payload": _valid_idx()[:-1],
    "trailing data": _valid_idx() + b"\x00",
    "truncated gzip": gzip.compress(_valid_idx((40, 40)), mtime=0)[:-30],
    "bad gzip crc": _flip_byte(gzip.compress(_valid_idx(), mtime=0), -8),  # first CRC byte
    "gzip of a short payload": gzip.compress(_valid_idx()[:-2], mtime=0),
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_read_idx_corruption_raises_data_error_naming_file(tmp_path, kind):
    path = tmp_path / f"{kind.replace(' ', '_')}.idx"
    path.write_bytes(CORRUPTIONS[kind])
    with pytest.raises(DataError) as err:
        read_idx(path)
    assert_names(err, path)
    assert err.value.path == str(path)


def test_read_idx_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="no such file") as err:
        read_idx(tmp_path / "absent.gz")
    assert_names(err, tmp_path / "absent.gz")
    with pytest.raises(DataError, match="directory") as err:
        read_idx(tmp_path)
    assert_names(err, tmp_path)


def test_data_error_is_a_value_error_and_accepts_a_bare_message():
    assert issubclass(DataError, ValueError)
    assert str(DataError("plain")) == "plain" and DataError("plain").path is None


# --------------------------------------------------------------------------
# Fashion-MNIST
# --------------------------------------------------------------------------


def _write_fashion(directory: Path, n_train=6, n_test=4, gz=(True, False, True, False), seed=0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test).astype(np.uint8),
    }
    for (stem, arr), compress in zip(arrays.items(), gz):
        write_idx(directory / (stem + (".gz" if compress else "")), arr)
    return arrays


def test_fashion_mnist_from_a_directory_of_mixed_gz_and_plain_files(tmp_path):
    arrays = _write_fashion(tmp_path)
    ds = load_fashion_mnist(tmp_path)
    assert ds.x_train.shape == (6, 28, 28, 1) and ds.x_test.shape == (4, 28, 28, 1)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int32
    np.testing.assert_array_equal(ds.x_train[..., 0], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert ds.num_classes == 10 and ds.name == "fashion_mnist"
    assert ds.info["files"]["train_images"] == str(tmp_path / "train-images-idx3-ubyte.gz")
    json.dumps(ds.info)  # provenance is plain JSON


def test_fashion_mnist_prefers_the_uncompressed_file(tmp_path):
    arrays = _write_fashion(tmp_path, gz=(True,) * 4)
    write_idx(tmp_path / "train-images-idx3-ubyte", arrays["train-images-idx3-ubyte"][::-1].copy())
    ds = load_fashion_mnist(tmp_path)
    assert ds.info["files"]["train_images"] == str(tmp_path / "train-images-idx3-ubyte")
    np.testing.assert_array_equal(ds.x_train[..., 0], arrays["train-images-idx3-ubyte"][::-1])


def test_fashion_mnist_missing_directory_says_how_to_install(tmp_path):
    with pytest.raises(DataError) as err:
        load_fashion_mnist(tmp_path / "nowhere")
    assert_names(err, tmp_path / "nowhere")
    assert "apt-get install dataset-fashion-mnist" in str(err.value) and "directory=" in str(err.value)


def test_fashion_mnist_missing_file_is_named(tmp_path):
    _write_fashion(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte") as err:
        load_fashion_mnist(tmp_path)
    assert str(tmp_path) in str(err.value)


@pytest.mark.parametrize(
    "stem, bad, expected",
    [
        ("train-labels-idx1-ubyte", np.zeros(5, np.uint8), "5 labels"),  # 6 images
        ("train-images-idx3-ubyte", np.zeros((6, 28, 27), np.uint8), "shape"),
        ("t10k-images-idx3-ubyte", np.zeros((4, 784), np.uint8), "shape"),
        ("t10k-images-idx3-ubyte", np.zeros((4, 28, 28), np.int32), "uint8"),
        ("t10k-labels-idx1-ubyte", np.full(4, 10, np.uint8), "out of range"),
        ("t10k-labels-idx1-ubyte", np.zeros((4, 1), np.uint8), "1-D"),
    ],
)
def test_fashion_mnist_inconsistent_files_raise_naming_the_file(tmp_path, stem, bad, expected):
    _write_fashion(tmp_path, gz=(False,) * 4)
    write_idx(tmp_path / stem, bad)
    with pytest.raises(DataError, match=expected) as err:
        load_fashion_mnist(tmp_path)
    assert_names(err, tmp_path / stem)


def test_fashion_mnist_truncated_real_style_gzip_names_file(tmp_path):
    _write_fashion(tmp_path, gz=(True,) * 4)
    target = tmp_path / "train-images-idx3-ubyte.gz"
    target.write_bytes(target.read_bytes()[:-40])
    with pytest.raises(DataError, match="gzip") as err:
        load_fashion_mnist(tmp_path)
    assert_names(err, target)


def test_fashion_mnist_real_debian_files():
    if not Path(FASHION_MNIST_DEFAULT_DIR).is_dir():
        if os.environ.get("SAMTHEORY_REQUIRE_DATASETS") == "1":
            pytest.fail(f"SAMTHEORY_REQUIRE_DATASETS=1 but {FASHION_MNIST_DEFAULT_DIR} is missing")
        pytest.skip(f"{FASHION_MNIST_DEFAULT_DIR} missing (install dataset-fashion-mnist)")
    ds = load_fashion_mnist()
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
    assert ds.x_train.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(ds.y_train, minlength=10), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(ds.y_test, minlength=10), np.full(10, 1000))
    # real images, not blank or constant files
    assert ds.x_train.max() == 255 and 50 < ds.x_train.mean() < 100


# --------------------------------------------------------------------------
# CIFAR
# --------------------------------------------------------------------------


def _cifar_rows(images_nhwc: np.ndarray) -> np.ndarray:
    # The published layout: per image, the red plane, then green, then blue.
    return images_nhwc.transpose(0, 3, 1, 2).reshape(len(images_nhwc), -1)


def _write_batch(path: Path, images: np.ndarray, labels, label_key: str, *, bytes_keys=True, protocol=2) -> None:
    batch = {"data": _cifar_rows(images), label_key: list(labels), "batch_label": "fake"}
    if bytes_keys:
        batch = {k.encode(): v for k, v in batch.items()}
    path.write_bytes(pickle.dumps(batch, protocol=protocol))


def _write_cifar10(directory: Path, per_batch=2, n_test=3, seed=0) -> tuple[np.ndarray, ...]:
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, (5 * per_batch, 32, 32, 3), dtype=np.uint8)
    y_train = rng.integers(0, 10, 5 * per_batch)
    x_test = rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8)
    y_test = rng.integers(0, 10, n_test)
    for i in range(5):
        part = slice(i * per_batch, (i + 1) * per_batch)
        _write_batch(directory / f"data_batch_{i + 1}", x_train[part], y_train[part], "labels")
    _write_batch(directory / "test_batch", x_test, y_test, "labels")
    return x_train, y_train, x_test, y_test


def test_cifar10_round_trip_with_python2_style_bytes_keys(tmp_path):
    x_train, y_train, x_test, y_test = _write_cifar10(tmp_path)
    ds = load_cifar(tmp_path)
    assert ds.x_train.shape == (10, 32, 32, 3) and ds.x_train.dtype == np.uint8
    np.testing.assert_array_equal(ds.x_train, x_train)
    np.testing.assert_array_equal(ds.y_train, y_train)
    np.testing.assert_array_equal(ds.x_test, x_test)
    np.testing.assert_array_equal(ds.y_test, y_test)
    assert ds.y_train.dtype == np.int32 and ds.num_classes == 10 and ds.name == "cifar10"
    json.dumps(ds.info)


def test_cifar10_pixel_layout_is_channels_last():
    # Row = R plane, G plane, B plane: pixel (0, 1) red is byte 1, green 1025.
    row = np.zeros(3072, np.uint8)
    row[1], row[1024 + 1], row[2048 + 32] = 10, 20, 30
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            (folder / name).write_bytes(pickle.dumps({b"data": row[None], b"labels": [3]}, protocol=2))
        ds = load_cifar(folder)
    assert ds.x_train[0, 0, 1, 0] == 10 and ds.x_train[0, 0, 1, 1] == 20 and ds.x_train[0, 1, 0, 2] == 30
    assert int(ds.x_train[0].sum()) == 60


def test_cifar10_accepts_the_parent_of_cifar_10_batches_py(tmp_path):
    x_train, *_ = _write_cifar10(tmp_path / "cifar-10-batches-py")
    ds = load_cifar(tmp_path)
    np.testing.assert_array_equal(ds.x_train, x_train)
    assert ds.info["directory"] == str(tmp_path / "cifar-10-batches-py")


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar100_fine_labels_with_str_keys(tmp_path, protocol):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    x_train = rng.integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    y_train = rng.integers(0, 100, 7)
    x_test = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    for name, x, y in (("train", x_train, y_train), ("test", x_test, [99, 0])):
        batch = {"data": _cifar_rows(x), "fine_labels": list(y), "coarse_labels": [0] * len(y)}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    ds = load_cifar(tmp_path, num_classes=100)
    np.testing.assert_array_equal(ds.x_train, x_train)
    np.testing.assert_array_equal(ds.y_train, y_train)
    np.testing.assert_array_equal(ds.y_test, [99, 0])
    assert ds.num_classes == 100 and ds.name == "cifar100"


class _Sneaky:
    def __reduce__(self):
        return (os.getcwd, ())


CIFAR_BAD_BATCHES = {
    "truncated pickle": lambda good: good[: len(good) // 2],
    "not a pickle": lambda good: b"hello, world",
    "foreign global": lambda good: pickle.dumps({b"data": _Sneaky(), b"labels": []}, protocol=2),
    "not a dict": lambda good: pickle.dumps([1, 2], protocol=2),
    "no labels": lambda good: pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}, protocol=2),
    "wrong row length": lambda good: pickle.dumps({b"data": np.zeros((2, 3071), np.uint8), b"labels": [0, 1]}),
    "wrong dtype": lambda good: pickle.dumps({b"data": np.zeros((2, 3072), np.int16), b"labels": [0, 1]}),
    "count mismatch": lambda good: pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}),
    "label out of range": lambda good: pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}),
    "negative label": lambda good: pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [-1, 0]}),
}


@pytest.mark.parametrize("kind", sorted(CIFAR_BAD_BATCHES))
def test_cifar_bad_batch_raises_data_error_naming_file(tmp_path, kind):
    _write_cifar10(tmp_path)
    target = tmp_path / "data_batch_3"
    target.write_bytes(CIFAR_BAD_BATCHES[kind](target.read_bytes()))
    with pytest.raises(DataError) as err:
        load_cifar(tmp_path)
    assert_names(err, target)


def test_cifar_refuses_to_run_code_from_the_pickle(tmp_path):
    _write_cifar10(tmp_path)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": _Sneaky(), b"labels": []}, protocol=2))
    with pytest.raises(DataError, match="refusing to load global posix.getcwd|refusing to load global os.getcwd"):
        load_cifar(tmp_path)


def test_cifar_missing_batches_and_bad_arguments(tmp_path):
    _write_cifar10(tmp_path)
    (tmp_path / "data_batch_5").unlink()
    with pytest.raises(DataError) as err:
        load_cifar(tmp_path)
    assert_names(err, tmp_path / "data_batch_5")
    with pytest.raises(DataError, match="cifar-100-python") as err:
        load_cifar(tmp_path, num_classes=100)
    assert_names(err, tmp_path)
    with pytest.raises(DataError) as err:
        load_cifar(tmp_path / "absent")
    assert_names(err, tmp_path / "absent")
    with pytest.raises(ValueError, match="num_classes"):
        load_cifar(tmp_path, num_classes=20)


# --------------------------------------------------------------------------
# ArrayDataset
# --------------------------------------------------------------------------


def _tiny(**changes) -> dict:
    fields = dict(
        x_train=np.zeros((4, 2, 2, 1), np.uint8),
        y_train=np.array([0, 1, 2, 1]),
        x_test=np.zeros((2, 2, 2, 1), np.uint8),
        y_test=np.array([2, 0]),
        num_classes=3,
        name="tiny",
    )
    fields.update(changes)
    return fields


def test_array_dataset_normalizes_labels_to_int32():
    ds = ArrayDataset(**_tiny(y_train=np.array([0, 1, 2, 1], np.uint8)))
    assert ds.y_train.dtype == np.int32 and ds.y_test.dtype == np.int32
    assert (ds.n_train, ds.n_test, ds.input_shape) == (4, 2, (2, 2, 1))
    assert "tiny" in repr(ds) and len(repr(ds)) < 200
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "other"


@pytest.mark.parametrize(
    "changes, field",
    [
        (dict(y_train=np.array([0, 1, 2])), "y_train"),
        (dict(y_test=np.array([0, 3])), "y_test"),
        (dict(y_train=np.array([0.0, 1.0, 2.0, 1.0])), "y_train"),
        (dict(y_train=np.array([0, -1, 2, 1])), "y_train"),
        (dict(x_test=np.zeros((2, 2, 3, 1), np.uint8)), "x_test"),
        (dict(x_test=np.zeros((2, 2, 2, 1), np.float32)), "x_test"),
        (dict(x_train=np.zeros(4, np.uint8)), "x_train"),
        (dict(x_train=np.zeros((0, 2, 2, 1), np.uint8), y_train=np.zeros(0, int)), "x_train"),
        (dict(num_classes=1), "num_classes"),
        (dict(num_classes=2.0), "num_classes"),
        (dict(name=""), "name"),
        (dict(info=[]), "info"),
        (dict(clean_y_train=np.array([0, 1])), "clean_y_train"),
    ],
)
def test_array_dataset_rejects_inconsistent_fields(changes, field):
    with pytest.raises(ValueError, match=field):
        ArrayDataset(**_tiny(**changes))


# --------------------------------------------------------------------------
# Synthetic images
# --------------------------------------------------------------------------


def test_synthetic_images_deterministic_balanced_and_independent_splits():
    a = synthetic_images(7, n_train=40, n_test=12)
    b = synthetic_images(7, n_train=40, n_test=12)
    c = synthetic_images(8, n_train=40, n_test=12)
    d = synthetic_images(7, n_train=44, n_test=12)
    assert a.x_train.shape == (40, 8, 8, 3) and a.x_train.dtype == np.uint8 and a.num_classes == 4
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)
    np.testing.assert_array_equal(a.x_test, d.x_test)  # test split does not depend on n_train
    np.testing.assert_array_equal(np.bincount(a.y_train), [10, 10, 10, 10])
    assert a.info["generation_args"]["seed"] == 7
    json.dumps(a.info)


@given(seed=st.integers(0, 2**31))
def test_synthetic_images_are_learnable_by_nearest_class_mean(seed):
    ds = synthetic_images(seed, n_train=64, n_test=64, num_classes=4)
    x_train = ds.x_train.reshape(ds.n_train, -1).astype(float)
    x_test = ds.x_test.reshape(ds.n_test, -1).astype(float)
    centroids = np.stack([x_train[ds.y_train == k].mean(0) for k in range(4)])
    predicted = np.argmin(((x_test[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    assert np.mean(predicted == ds.y_test) >= 0.95


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(seed=-1), "seed"),
        (dict(n_train=0), "n_train"),
        (dict(n_test=-1), "n_test"),
        (dict(image_shape=(8, 8)), "image_shape"),
        (dict(num_classes=1), "num_classes"),
        (dict(noise_std=float("nan")), "noise_std"),
    ],
)
def test_synthetic_images_bad_arguments(kwargs, name):
    args = dict(seed=0, n_train=8, n_test=4) | kwargs
    with pytest.raises(ValueError, match=name):
        synthetic_images(args.pop("seed"), **args)


# --------------------------------------------------------------------------
# binary_subset
# --------------------------------------------------------------------------


def test_binary_subset_pair_keeps_and_relabels_only_those_classes():
    ds = synthetic_images(0, n_train=60, n_test=30, num_classes=5)
    y_before = ds.y_train.copy()
    sub = binary_subset(ds, (3, 1))
    keep = np.isin(ds.y_train, [3, 1])
    np.testing.assert_array_equal(sub.x_train, ds.x_train[keep])
    np.testing.assert_array_equal(sub.y_train, (ds.y_train[keep] == 1).astype(int))
    np.testing.assert_array_equal(sub.y_test, (ds.y_test[np.isin(ds.y_test, [3, 1])] == 1).astype(int))
    assert sub.n_train == np.sum(ds.y_train == 3) + np.sum(ds.y_train == 1)
    assert sub.num_classes == 2 and sub.name == "synthetic_images-3vs1"
    assert sub.info["transforms"][-1] == {"transform": "binary_subset", "classes": [3, 1], "label": "3->0, 1->1"}
    assert ds.info["transforms"] == []  # the input's provenance is not touched
    np.testing.assert_array_equal(ds.y_train, y_before)


def test_binary_subset_even_odd_keeps_everything():
    ds = synthetic_images(1, n_train=20, n_test=10, num_classes=4)
    sub = binary_subset(ds, "even_odd")
    assert sub.n_train == 20 and sub.n_test == 10 and sub.num_classes == 2
    np.testing.assert_array_equal(sub.y_train, ds.y_train % 2)
    np.testing.assert_array_equal(sub.y_test, ds.y_test % 2)
    assert sub.info["transforms"][-1]["classes"] == "even_odd"


@pytest.mark.parametrize("classes", [(1, 1), (0, 4), (0,), "odd_even", (0.0, 1), None])
def test_binary_subset_bad_classes(classes):
    ds = synthetic_images(0, n_train=8, n_test=4)
    with pytest.raises(ValueError, match="classes"):
        binary_subset(ds, classes)


def test_binary_subset_refuses_noisy_data():
    noisy = with_label_noise(synthetic_images(0, n_train=8, n_test=4), 0.25, 0)
    with pytest.raises(ValueError, match="ds"):
        binary_subset(noisy, "even_odd")


# --------------------------------------------------------------------------
# Label noise
# --------------------------------------------------------------------------

_NOISE_BASE = synthetic_images(3, n_train=97, n_test=11, num_classes=5)


@given(rate=st.floats(0.0, 0.999), seed=st.integers(0, 2**32))
def test_label_noise_realized_rate_is_exact_and_only_train_labels_change(rate, seed):
    ds = _NOISE_BASE
    y_before = ds.y_train.copy()
    noisy = with_label_noise(ds, rate, seed)
    k = round(rate * ds.n_train)
    changed = noisy.y_train != ds.y_train
    assert changed.sum() == k == num_noisy_labels(rate, ds.n_train)
    assert noisy.info["label_noise"]["num_noisy"] == k
    assert noisy.info["label_noise"]["realized_rate"] == k / ds.n_train
    np.testing.assert_array_equal(noisy.clean_y_train, ds.y_train)
    np.testing.assert_array_equal(ds.y_train, y_before)  # input untouched
    assert noisy.y_train.min() >= 0 and noisy.y_train.max() < ds.num_classes
    assert noisy.x_train is ds.x_train and noisy.x_test is ds.x_test and noisy.y_test is ds.y_test
    again = with_label_noise(ds, rate, seed)
    np.testing.assert_array_equal(again.y_train, noisy.y_train)


def test_label_noise_differs_between_seeds_and_records_provenance():
    a = with_label_noise(_NOISE_BASE, 0.3, 0)
    b = with_label_noise(_NOISE_BASE, 0.3, 1)
    assert not np.array_equal(a.y_train, b.y_train)
    assert a.name == "synthetic_images-noise0.3"
    assert a.info["transforms"][-1]["transform"] == "label_noise" and a.info["label_noise"]["seed"] == 0
    json.dumps(a.info)


def test_label_noise_new_labels_are_uniform_over_the_other_classes():
    ds = synthetic_images(0, n_train=24000, n_test=0, image_shape=(1, 1, 1), num_classes=4)
    noisy = with_label_noise(ds, 0.5, 123)
    flipped = noisy.y_train != noisy.clean_y_train
    # Position chosen uniformly: flipped fraction is the same in each class.
    per_class = np.array([flipped[ds.y_train == c].mean() for c in range(4)])
    np.testing.assert_allclose(per_class, 0.5, atol=0.03)
    for c in range(4):
        new = noisy.y_train[flipped & (ds.y_train == c)]
        freq = np.bincount(new, minlength=4) / len(new)
        assert freq[c] == 0
        np.testing.assert_allclose(np.delete(freq, c), 1 / 3, atol=0.03)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan"), True, "0.1"])
def test_label_noise_bad_rate(rate):
    with pytest.raises(ValueError, match="rate"):
        with_label_noise(_NOISE_BASE, rate, 0)


def test_label_noise_bad_seed_and_noise_on_noise():
    with pytest.raises(ValueError, match="seed"):
        with_label_noise(_NOISE_BASE, 0.1, -3)
    with pytest.raises(ValueError, match="ds"):
        with_label_noise(with_label_noise(_NOISE_BASE, 0.1, 0), 0.1, 1)


def test_label_noise_rate_zero_keeps_labels_and_sets_clean():
    noisy = with_label_noise(_NOISE_BASE, 0.0, 5)
    np.testing.assert_array_equal(noisy.y_train, _NOISE_BASE.y_train)
    assert noisy.clean_y_train is not None and noisy.info["label_noise"]["num_noisy"] == 0


# --------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------


def test_standardize_images_scaling_and_channel_statistics():
    ds = synthetic_images(2, n_train=50, n_test=10, image_shape=(4, 4, 3))
    scaled = standardize_images(ds.x_train)
    assert scaled.dtype == np.float32 and scaled.shape == ds.x_train.shape
    np.testing.assert_allclose(scaled, ds.x_train / 255.0, rtol=1e-6)
    mean, std = channel_stats(ds.x_train)
    assert mean.shape == (3,) and std.shape == (3,)
    z = standardize_images(ds.x_train, mean, std).astype(np.float64)
    np.testing.assert_allclose(z.reshape(-1, 3).mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.reshape(-1, 3).std(0), 1.0, rtol=1e-4)


@pytest.mark.parametrize(
    "args, name",
    [
        ((np.zeros((2, 3), np.float32),), "x_uint8"),
        ((np.zeros((2, 3), np.uint8), 0.5, None), "mean and std"),
        ((np.zeros((2, 3), np.uint8), np.zeros(2), np.ones(3)), "mean"),
        ((np.zeros((2, 3), np.uint8), 0.0, np.array([1.0, 0.0, 1.0])), "std"),
    ],
)
def test_standardize_images_bad_arguments(args, name):
    with pytest.raises(ValueError, match=name):
        standardize_images(*args)


# --------------------------------------------------------------------------
# MNIST-1D
# --------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("samtheory.data tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    try:
        import requests
    except ImportError:  # pragma: no cover - mnist1d depends on it
        return
    monkeypatch.setattr(requests, "get", refuse)
    monkeypatch.setattr(requests.Session, "request", refuse)


def _rng_states():
    state = np.random.get_state()
    return (state[0], state[1].copy(), *state[2:]), random.getstate()


def _assert_same_rng_states(before, after):
    (np_before, py_before), (np_after, py_after) = before, after
    assert np_before[0] == np_after[0]
    np.testing.assert_array_equal(np_before[1], np_after[1])
    assert np_before[2:] == np_after[2:]
    assert py_before == py_after


def test_mnist1d_default_generation_then_cache(tmp_path, no_network):
    np.random.seed(1234)
    random.seed(99)
    np.random.rand(3)  # a state mid-stream, not a freshly seeded one
    before = _rng_states()
    path = tmp_path / "sub" / "mnist1d.npz"
    first = load_mnist1d(path)
    _assert_same_rng_states(before, _rng_states())
    assert first.x_train.shape == (4000, 40) and first.x_test.shape == (1000, 40)
    assert first.x_train.dtype == np.float32 and first.y_train.dtype == np.int32
    assert first.num_classes == 10 and set(np.unique(first.y_train)) == set(range(10))
    assert first.info["from_cache"] is False and path.is_file()
    assert first.info["generation_args"]["num_samples"] == 5000
    second = load_mnist1d(path)
    assert second.info["from_cache"] is True
    _assert_same_rng_states(before, _rng_states())
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    json.dumps(second.info)


def test_mnist1d_matches_the_packages_make_dataset(tmp_path, no_network):
    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    ds = load_mnist1d(tmp_path / "m.npz", num_samples=200, train_split=0.75, seed=3)
    state = np.random.get_state()
    try:
        reference = make_dataset(ObjectView(mnist1d_generation_args(num_samples=200, train_split=0.75, seed=3)))
    finally:
        np.random.set_state(state)
    assert ds.n_train == 150 and ds.n_test == 50
    np.testing.assert_array_equal(ds.x_train, reference["x"].astype(np.float32))
    np.testing.assert_array_equal(ds.y_test, reference["y_test"])


def test_mnist1d_other_arguments_regenerate_instead_of_reusing_the_cache(tmp_path, no_network):
    path = tmp_path / "m.npz"
    a = load_mnist1d(path, num_samples=100, seed=1)
    b = load_mnist1d(path, num_samples=100, seed=2)
    assert b.info["from_cache"] is False and not np.array_equal(a.x_train, b.x_train)
    c = load_mnist1d(path, num_samples=120, seed=1)
    assert c.info["from_cache"] is False and c.n_train == 96
    a_again = load_mnist1d(path, num_samples=100, seed=1)
    assert a_again.info["from_cache"] is False
    np.testing.assert_array_equal(a_again.x_train, a.x_train)
    assert load_mnist1d(path, num_samples=100, seed=1).info["from_cache"] is True
    assert load_mnist1d(path, num_samples=100, seed=1, regenerate=True).info["from_cache"] is False


def _npz_bytes(**members) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **members)
    return buffer.getvalue()


def _meta(**args) -> np.ndarray:
    record = {"format": 1, "generation_args": mnist1d_generation_args(**args)}
    return np.frombuffer(json.dumps(record).encode(), np.uint8)


MNIST1D_BAD_CACHES = {
    "garbage": lambda good: b"not a zip file at all",
    "truncated zip": lambda good: good[: len(good) // 2],
    "empty": lambda good: b"",
    "missing member": lambda good: _npz_bytes(x_train=np.zeros((8, 40), np.float32)),
    "bad json": lambda good: _npz_bytes(
        __meta__=np.frombuffer(b"{nope", np.uint8),
        **{name: np.zeros(1) for name in ("x_train", "y_train", "x_test", "y_test")},
    ),
    "wrong shape": lambda good: _npz_bytes(
        __meta__=_meta(num_samples=10),
        x_train=np.zeros((8, 39), np.float32),
        y_train=np.zeros(8, np.int32),
        x_test=np.zeros((2, 40), np.float32),
        y_test=np.zeros(2, np.int32),
    ),
    "bad labels": lambda good: _npz_bytes(
        __meta__=_meta(num_samples=10),
        x_train=np.zeros((8, 40), np.float32),
        y_train=np.full(8, 10, np.int32),
        x_test=np.zeros((2, 40), np.float32),
        y_test=np.zeros(2, np.int32),
    ),
}


@pytest.mark.parametrize("kind", sorted(MNIST1D_BAD_CACHES))
def test_mnist1d_corrupt_cache_is_regenerated_with_a_warning_naming_it(tmp_path, kind, no_network):
    # Issue 14 §2: the cache is derived data; a corrupt one must not break every figure using it.
    path = tmp_path / "m.npz"
    good = load_mnist1d(path, num_samples=10)
    path.write_bytes(MNIST1D_BAD_CACHES[kind](path.read_bytes()))
    with pytest.warns(UserWarning, match="regenerat") as caught:
        repaired = load_mnist1d(path, num_samples=10)
    assert str(path) in str(caught[0].message)
    assert repaired.info["from_cache"] is False
    np.testing.assert_array_equal(repaired.x_train, good.x_train)
    assert load_mnist1d(path, num_samples=10).info["from_cache"] is True


def test_mnist1d_path_under_a_regular_file_is_refused_before_generating(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    monkeypatch.setattr("samtheory.data.mnist1d._generate", lambda args: pytest.fail("generated first"))
    with pytest.raises(ValueError, match="path") as err:
        load_mnist1d(blocker / "m.npz", num_samples=10)
    assert_names(err, blocker)


def test_mnist1d_cache_write_is_atomic_and_zip_is_a_plain_npz(tmp_path, no_network):
    path = tmp_path / "m.npz"
    load_mnist1d(path, num_samples=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]  # no temporary debris
    with zipfile.ZipFile(path) as archive:
        assert {"__meta__.npy", "x_train.npy", "y_train.npy", "x_test.npy", "y_test.npy"} == set(archive.namelist())
    with np.load(path, allow_pickle=False) as archive:
        meta = json.loads(archive["__meta__"].tobytes())
    assert meta["generation_args"] == mnist1d_generation_args(num_samples=10)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(num_samples=105), "num_samples"),
        (dict(num_samples=0), "num_samples"),
        (dict(train_split=1.0), "train_split"),
        (dict(num_samples=10, train_split=0.05), "train_split"),
        (dict(seed=-1), "seed"),
        (dict(seed=2**32), "seed"),
    ],
)
def test_mnist1d_bad_arguments(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=name):
        load_mnist1d(tmp_path / "m.npz", **kwargs)
    assert not (tmp_path / "m.npz").exists()


def test_mnist1d_directory_path_is_refused(tmp_path):
    with pytest.raises(DataError) as err:
        load_mnist1d(tmp_path, num_samples=10)
    assert_names(err, tmp_path)


# --------------------------------------------------------------------------
# scripts/install_datasets.sh
# --------------------------------------------------------------------------


def _fake_tool(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text("#!/bin/bash\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _run_script(path_dir: Path, **env) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": str(path_dir), "HOME": str(path_dir)} | env
    return subprocess.run(
        ["/bin/bash", str(INSTALL_SCRIPT)], env=environment, capture_output=True, text=True, timeout=60, check=False
    )


def test_install_script_without_apt_warns_and_exits_zero(tmp_path):
    result = _run_script(tmp_path)
    assert result.returncode == 0
    assert "WARNING" in result.stderr and "apt-get not found" in result.stderr
    strict = _run_script(tmp_path, SAMTHEORY_REQUIRE_DATASETS="1")
    assert strict.returncode == 1


@pytest.mark.parametrize("candidate_before_update", [False, True])
def test_install_script_apt_logic_with_fake_tools(tmp_path, candidate_before_update):
    log = tmp_path / "calls.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "env").symlink_to("/usr/bin/env")
    _fake_tool(bin_dir, "dpkg-query", "exit 1")  # never installed
    candidate = "1.0" if candidate_before_update else "(none)"
    _fake_tool(bin_dir, "apt-cache", f'echo "apt-cache $*" >> {log}; echo "  Candidate: {candidate}"')
    _fake_tool(bin_dir, "apt-get", f'echo "apt-get $*" >> {log}; exit 0')
    _fake_tool(bin_dir, "sudo", 'shift; exec "$@"')  # only used when the tests do not run as root
    result = _run_script(bin_dir)
    calls = log.read_text().splitlines()
    assert result.returncode == 0 and "WARNING" in result.stderr
    assert any(c.startswith("apt-get update") for c in calls) != candidate_before_update
    installs = [c for c in calls if c.startswith("apt-get install")]
    if candidate_before_update:
        assert installs and installs[0].endswith("dataset-fashion-mnist")
        assert "still not installed" in result.stderr
    else:
        assert not installs and "no configured apt source" in result.stderr


def test_install_script_is_a_no_op_when_the_package_is_installed():
    query = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", "dataset-fashion-mnist"], capture_output=True, text=True, check=False
    ) if Path("/usr/bin/dpkg-query").exists() else None
    if query is None or query.stdout != "install ok installed":
        pytest.skip("dataset-fashion-mnist is not installed (the test never installs it)")
    result = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and "already installed" in result.stdout
    assert "train-images-idx3-ubyte.gz" in result.stdout
