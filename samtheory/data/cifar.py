"""CIFAR-10 and CIFAR-100 from the python-pickle batches in a local directory.

Nothing is downloaded: fetch ``cifar-10-python.tar.gz`` or
``cifar-100-python.tar.gz`` from https://www.cs.toronto.edu/~kriz/cifar.html
yourself, extract it, and pass the directory (the extracted
``cifar-10-batches-py`` / ``cifar-100-python`` folder or the folder that
contains it).

The batches are pickles, and unpickling can run arbitrary code, so they are
read with an unpickler that only rebuilds NumPy arrays and plain containers;
anything else in the file raises :class:`~samtheory.data.DataError`.

Conventions: [data-layout] (images NHWC ``uint8`` ``(n, 32, 32, 3)``, labels
``int32``; CIFAR-100 uses the 100 fine labels).
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from samtheory.data.dataset import ArrayDataset
from samtheory.data.errors import DataError, read_data_file

__all__ = ["CIFAR_LAYOUTS", "load_cifar"]

#: num_classes -> (extracted folder name, train batch names, test batch names, label key).
CIFAR_LAYOUTS: dict[int, tuple[str, tuple[str, ...], tuple[str, ...], str]] = {
    10: ("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), "labels"),
    100: ("cifar-100-python", ("train",), ("test",), "fine_labels"),
}
_SIDE = 32
_CHANNELS = 3


def _allowed_globals() -> dict[tuple[str, str], Any]:
    # What a pickled ndarray refers to, under the module names of NumPy 1.x
    # (numpy.core) and 2.x (numpy._core); taken from NumPy's own reduce
    # output so that private names are never imported here.
    reconstruct = np.zeros(1).__reduce__()[0]
    from_buffer = np.zeros(1).__reduce_ex__(5)[0]
    scalar = np.int64(0).__reduce__()[0]
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Python 3 pickles of bytes at protocol <= 2 go through codecs.encode.
        ("_codecs", "encode"): codecs.encode,
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = from_buffer
    return allowed


class _ArrayOnlyUnpickler(pickle.Unpickler):
    _allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def _field(batch: dict, key: str, path: Path) -> Any:
    # The official batches were written by Python 2 (keys become bytes with
    # encoding="bytes"); a re-pickled copy may have str keys.
    for candidate in (key.encode("ascii"), key):
        if candidate in batch:
            return batch[candidate]
    raise DataError(f"batch has no {key!r} entry (keys: {sorted(map(repr, batch))})", path)


def _read_batch(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    raw = read_data_file(path, "a CIFAR batch file")
    try:
        batch = _ArrayOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as err:
        # A corrupt pickle can fail with nearly any exception type
        # (UnpicklingError, EOFError, ValueError, TypeError, ...).
        raise DataError(f"not a readable CIFAR pickle batch ({type(err).__name__}: {err})", path) from err
    if not isinstance(batch, dict):
        raise DataError(f"expected a pickled dict, found {type(batch).__name__}", path)
    data = _field(batch, "data", path)
    labels = _field(batch, label_key, path)
    row_length = _CHANNELS * _SIDE * _SIDE
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != row_length:
        described = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"'data' must be a uint8 array of shape (n, {row_length}), found {described}", path)
    try:
        label_array = np.asarray(labels)
    except Exception as err:
        raise DataError(f"{label_key!r} is not a list of integers ({err})", path) from err
    if label_array.ndim != 1 or (label_array.size and label_array.dtype.kind not in "iu"):
        found = f"{label_array.dtype} {label_array.shape}"
        raise DataError(f"{label_key!r} must be a flat list of integers, found {found}", path)
    if len(label_array) != len(data):
        raise DataError(f"{len(label_array)} labels for {len(data)} images", path)
    if label_array.size and (label_array.min() < 0 or label_array.max() >= num_classes):
        raise DataError(
            f"labels must lie in [0, {num_classes}), found [{label_array.min()}, {label_array.max()}]", path
        )
    # Each row is the red plane, then green, then blue, each row-major 32x32.
    images = data.reshape(-1, _CHANNELS, _SIDE, _SIDE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), label_array.astype(np.int32)


def _batch_directory(directory: Path, num_classes: int) -> Path:
    folder_name, train_names, test_names, _ = CIFAR_LAYOUTS[num_classes]
    first = train_names[0]
    for candidate in (directory, directory / folder_name):
        if (candidate / first).exists():
            return candidate
    expected = ", ".join(train_names + test_names)
    raise DataError(
        f"no CIFAR-{num_classes} batches here or in {folder_name}/ (expected {expected}); download "
        f"cifar-{num_classes}-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, extract it, "
        "and pass the extracted folder",
        directory,
    )


def _load_split(
    folder: Path, names: tuple[str, ...], label_key: str, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    parts = [_read_batch(folder / name, label_key, num_classes) for name in names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def load_cifar(directory: str | os.PathLike[str], *, num_classes: int = 10) -> ArrayDataset:
    """Load CIFAR-10 (``num_classes=10``) or CIFAR-100 (``num_classes=100``, fine labels).

    ``directory`` holds the python-pickle batches (CIFAR-10:
    ``data_batch_1`` ... ``data_batch_5`` and ``test_batch``; CIFAR-100:
    ``train`` and ``test``) or contains the extracted folder
    ``cifar-10-batches-py/`` / ``cifar-100-python/``. Train batches are
    concatenated in order. Images come back NHWC ``uint8``
    ``(n, 32, 32, 3)``, labels ``int32``.

    Raises ``ValueError`` naming ``num_classes`` for anything but 10 or 100,
    and :class:`~samtheory.data.DataError` naming the directory or batch
    file when a batch is missing, not a pickle, holds something other than
    arrays and lists, lacks the expected entries, or has images of the wrong
    shape, a label count that differs from the image count, or labels out of
    range.
    """
    if num_classes not in CIFAR_LAYOUTS:
        raise ValueError(f"num_classes must be 10 (CIFAR-10) or 100 (CIFAR-100), got {num_classes!r}")
    root = Path(directory)
    if not root.is_dir():
        raise DataError("no such directory (pass the folder holding the extracted CIFAR batches)", root)
    folder = _batch_directory(root, num_classes)
    _, train_names, test_names, label_key = CIFAR_LAYOUTS[num_classes]
    x_train, y_train = _load_split(folder, train_names, label_key, num_classes)
    x_test, y_test = _load_split(folder, test_names, label_key, num_classes)
    if len(x_train) == 0:
        raise DataError("the train batches hold no images", folder)
    return ArrayDataset(
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=num_classes,
        name=f"cifar{num_classes}",
        info={
            "source": f"cifar{num_classes}",
            "format": "python-pickle batches",
            "directory": str(folder),
            "files": {"train": [str(folder / n) for n in train_names], "test": [str(folder / n) for n in test_names]},
            "label_key": label_key,
            "transforms": [],
        },
    )
