"""MNIST-1D, generated locally with the ``mnist1d`` package and cached in one file.

``mnist1d.data.get_dataset`` downloads a pickle from the internet; it is never
called. The data set is built with ``mnist1d.data.make_dataset`` from the
package's default arguments (``get_dataset_args``) with ``num_samples``,
``train_split`` and ``seed`` overridden. ``make_dataset`` reseeds NumPy's and
Python's *global* random generators, so their states are saved before and
restored after it: calling :func:`load_mnist1d` leaves ``np.random`` and
``random`` exactly as it found them.

Cache policy: the cache file stores the generation arguments next to the
arrays. When they differ from the requested ones (or the file is of an older
layout) the data set is regenerated and the file replaced, so a cache can
never hand back a different data set than the one asked for. The file is
derived data: one that cannot be read, or holds arrays that do not fit its
stored arguments, is regenerated and replaced, with a warning naming it.

Conventions: [data-layout] (``float32`` ``(n, 40)``, labels ``int32``).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import json
import numbers
import os
import random
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from samtheory.data.dataset import ArrayDataset
from samtheory.data.errors import DataError
from samtheory.results import atomic_write_bytes

__all__ = ["load_mnist1d", "mnist1d_generation_args"]

# Bumped when the cache layout or the way arrays are derived from
# make_dataset changes; files of another layout are regenerated.
_CACHE_FORMAT = 1
_META_MEMBER = "__meta__"
_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
_NUM_CLASSES = 10


def mnist1d_generation_args(*, num_samples: int = 5000, train_split: float = 0.8, seed: int = 42) -> dict[str, Any]:
    """The full argument dict passed to ``mnist1d.data.make_dataset``, as JSON values.

    The package defaults with ``num_samples``, ``train_split`` and ``seed``
    replaced; the download URL is dropped (it plays no part in generation).
    Checks the three arguments and raises ``ValueError`` naming the bad one.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral) or num_samples < 10:
        raise ValueError(f"num_samples must be an integer >= 10, got {num_samples!r}")
    if num_samples % _NUM_CLASSES:
        # make_dataset silently makes num_samples // 10 per class; refusing is
        # clearer than returning fewer examples than asked for.
        raise ValueError(f"num_samples must be a multiple of {_NUM_CLASSES}, got {num_samples}")
    if isinstance(train_split, bool) or not isinstance(train_split, numbers.Real) or not 0 < train_split < 1:
        raise ValueError(f"train_split must be a number in (0, 1), got {train_split!r}")
    split_index = int(num_samples * float(train_split))
    if not 1 <= split_index < num_samples:
        raise ValueError(f"train_split={train_split} leaves an empty train or test split of {num_samples} samples")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")

    from mnist1d.data import get_dataset_args  # lazy: the package imports matplotlib

    args = dict(get_dataset_args(as_dict=True))
    args.pop("url", None)
    args.update(num_samples=int(num_samples), train_split=float(train_split), seed=int(seed))
    # JSON round trip: tuples become lists, so a reloaded dict compares equal.
    return json.loads(json.dumps(args))


@contextlib.contextmanager
def _global_rng_preserved() -> Iterator[None]:
    numpy_state = np.random.get_state()
    python_state = random.getstate()
    try:
        yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


def _generate(args: dict[str, Any]) -> dict[str, np.ndarray]:
    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    with _global_rng_preserved():
        raw = make_dataset(ObjectView(dict(args)))
    return {
        "x_train": np.asarray(raw["x"], dtype=np.float32),
        "y_train": np.asarray(raw["y"], dtype=np.int32),
        "x_test": np.asarray(raw["x_test"], dtype=np.float32),
        "y_test": np.asarray(raw["y_test"], dtype=np.int32),
    }


def _write_cache(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    members = dict(arrays)
    members[_META_MEMBER] = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **members)
    atomic_write_bytes(path, buffer.getvalue())


def _read_cache(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(meta, arrays)`` of a cache file; ``DataError`` naming it if unreadable."""
    hint = ""
    try:
        with np.load(path, allow_pickle=False) as archive:
            members = set(archive.files)
            missing = [m for m in (_META_MEMBER, *_ARRAYS) if m not in members]
            if missing:
                raise DataError(f"not an MNIST-1D cache file (missing members {missing}){hint}", path)
            meta = json.loads(archive[_META_MEMBER].tobytes().decode("utf-8"))
            arrays = {name: archive[name] for name in _ARRAYS}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        # ValueError covers bad JSON, bad UTF-8 and npy headers np.load rejects.
        raise DataError(f"unreadable MNIST-1D cache file ({type(err).__name__}: {err}){hint}", path) from err
    if not isinstance(meta, dict):
        raise DataError(f"cache meta record is a {type(meta).__name__}, expected an object{hint}", path)
    return meta, arrays


def _check_cached_arrays(path: Path, arrays: dict[str, np.ndarray], args: dict[str, Any]) -> None:
    # The stored args matched; the arrays must then have exactly the shapes
    # those args produce, or the file was tampered with or damaged.
    n_train = int(args["num_samples"] * args["train_split"])
    n_test = args["num_samples"] - n_train
    length = args["final_seq_length"]
    expected = {
        "x_train": ((n_train, length), np.float32),
        "y_train": ((n_train,), np.int32),
        "x_test": ((n_test, length), np.float32),
        "y_test": ((n_test,), np.int32),
    }
    for name, (shape, dtype) in expected.items():
        arr = arrays[name]
        if arr.shape != shape or arr.dtype != dtype:
            raise DataError(
                f"member {name} is {arr.dtype} {arr.shape}, expected {np.dtype(dtype)} {shape}",
                path,
            )
    for name in ("y_train", "y_test"):
        labels = arrays[name]
        if labels.size and (labels.min() < 0 or labels.max() >= _NUM_CLASSES):
            raise DataError(f"member {name} has labels outside [0, {_NUM_CLASSES})", path)
    if not all(np.isfinite(arrays[name]).all() for name in ("x_train", "x_test")):
        raise DataError("cached inputs contain NaN or inf", path)


def load_mnist1d(
    path: str | os.PathLike[str],
    *,
    num_samples: int = 5000,
    train_split: float = 0.8,
    seed: int = 42,
    regenerate: bool = False,
) -> ArrayDataset:
    """MNIST-1D with the given generation arguments, cached in the file ``path``.

    The defaults give the standard data set: 4000 train and 1000 test
    signals, ``float32`` ``(n, 40)``, 10 balanced classes overall (labels
    ``int32``). ``num_samples`` must be a multiple of 10; the train split
    has ``int(num_samples * train_split)`` examples.

    ``path`` is the cache file (an ``.npz`` archive whatever its name; parent
    directories are created). If it exists and its stored generation
    arguments equal the requested ones, it is loaded; otherwise the data set
    is generated locally (never downloaded) and written atomically, replacing
    any cache made with other arguments. ``regenerate=True`` always
    regenerates. NumPy's and Python's global RNG states are left unchanged.

    ``info`` holds the generation arguments, the ``mnist1d`` version, the
    cache path and whether the cache was used (``"from_cache"``).

    An existing cache file that cannot be read, or holds arrays that do not
    fit its stored arguments, is regenerated with a ``UserWarning`` naming it.

    Raises ``ValueError`` naming a bad argument, and
    :class:`~samtheory.data.DataError` (a ``ValueError``) naming ``path`` if
    it is a directory or lies under something that is not a directory,
    before anything is generated.
    """
    args = mnist1d_generation_args(num_samples=num_samples, train_split=train_split, seed=seed)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    cache = Path(path)
    if cache.is_dir():
        raise DataError("is a directory; pass a file path for the MNIST-1D cache, e.g. .../mnist1d.npz", cache)
    blocker = next((p for p in cache.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise DataError(f"is not a directory, so path {cache} cannot be created under it", blocker)
    arrays = None
    if not regenerate and cache.exists():
        try:
            meta, stored = _read_cache(cache)
            if meta.get("format") == _CACHE_FORMAT and meta.get("generation_args") == args:
                _check_cached_arrays(cache, stored, args)
                arrays = stored
        except DataError as err:
            # Derived data: a damaged file is rebuilt, not a reason to fail every figure that reads it.
            warnings.warn(f"{err}; regenerating it", stacklevel=2)
    from_cache = arrays is not None
    if arrays is None:
        arrays = _generate(args)
        meta = {"format": _CACHE_FORMAT, "generator": "mnist1d.data.make_dataset", "generation_args": args}
        _write_cache(cache, arrays, meta)
    try:
        version = importlib.metadata.version("mnist1d")
    except importlib.metadata.PackageNotFoundError:
        version = None
    return ArrayDataset(
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_test=arrays["x_test"],
        y_test=arrays["y_test"],
        num_classes=_NUM_CLASSES,
        name="mnist1d",
        info={
            "source": "mnist1d (generated locally by mnist1d.data.make_dataset)",
            "generation_args": args,
            "mnist1d_version": version,
            "cache_path": str(cache),
            "from_cache": from_cache,
            "transforms": [],
        },
    )
