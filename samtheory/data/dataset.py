"""``ArrayDataset``: a train/test split of in-memory NumPy arrays with provenance.

Conventions: [data-layout], [label-noise] (see docs/conventions.md). Labels
are ``int32`` class indices in ``[0, num_classes)``. Images are NHWC
``uint8`` ``(n, H, W, C)``; vector data (MNIST-1D) is ``float32`` ``(n, d)``.
The leading axis is the example axis of [loss-mean].
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

import numpy as np

__all__ = ["ArrayDataset"]


def _as_labels(field: str, labels: Any, num_classes: int) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{field} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        # A float label is almost always a mix-up of x and y; refuse it
        # rather than truncate.
        raise ValueError(f"{field} must hold integers, got dtype {arr.dtype}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= num_classes):
        raise ValueError(
            f"{field} must lie in [0, {num_classes}) (num_classes), got values in [{int(arr.min())}, {int(arr.max())}]"
        )
    # Values are range-checked above, so the cast is exact.
    return arr if arr.dtype == np.int32 else arr.astype(np.int32)


def _as_inputs(field: str, inputs: Any) -> np.ndarray:
    arr = np.asarray(inputs)
    if arr.ndim < 2:
        raise ValueError(f"{field} must have an example axis and at least one feature axis, got shape {arr.shape}")
    if arr.dtype.kind not in "uif":
        raise ValueError(f"{field} must be numeric, got dtype {arr.dtype}")
    return arr


@dataclasses.dataclass(frozen=True, eq=False)
class ArrayDataset:
    """A classification data set held in memory, with where it came from.

    Attributes:
        x_train, x_test: inputs, example axis first. Images are NHWC
            ``uint8`` ``(n, H, W, C)``; MNIST-1D is ``float32`` ``(n, 40)``.
            Both splits share dtype and per-example shape.
        y_train, y_test: ``int32`` labels in ``[0, num_classes)`` (other
            integer dtypes are converted; floats are refused).
        num_classes: number of classes, ``>= 2``.
        name: short identifier, e.g. ``"fashion_mnist"``; transforms extend it.
        info: provenance as plain JSON values: source files, generation
            arguments, and under ``"transforms"`` the list of transforms
            applied, in order.
        clean_y_train: the train labels before label noise ([label-noise]);
            ``None`` unless :func:`samtheory.data.with_label_noise` was
            applied.

    Equality is identity (``eq=False``): comparing array fields elementwise
    is not a meaningful ``==``. Transforms in :mod:`samtheory.data` never
    modify the arrays of a data set they are given; please do the same.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    name: str
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    clean_y_train: np.ndarray | None = None

    def __post_init__(self) -> None:
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, numbers.Integral):
            raise ValueError(f"num_classes must be an integer, got {self.num_classes!r}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.info, dict):
            raise ValueError(f"info must be a dict, got {type(self.info).__name__}")
        num_classes = int(self.num_classes)
        x_train = _as_inputs("x_train", self.x_train)
        x_test = _as_inputs("x_test", self.x_test)
        y_train = _as_labels("y_train", self.y_train, num_classes)
        y_test = _as_labels("y_test", self.y_test, num_classes)
        if len(x_train) == 0:
            raise ValueError("x_train must hold at least one example")
        if len(x_train) != len(y_train):
            raise ValueError(f"x_train has {len(x_train)} examples but y_train has {len(y_train)} labels")
        if len(x_test) != len(y_test):
            raise ValueError(f"x_test has {len(x_test)} examples but y_test has {len(y_test)} labels")
        if x_train.shape[1:] != x_test.shape[1:]:
            raise ValueError(
                f"x_train examples have shape {x_train.shape[1:]} but x_test examples have shape {x_test.shape[1:]}"
            )
        if x_train.dtype != x_test.dtype:
            raise ValueError(f"x_train has dtype {x_train.dtype} but x_test has dtype {x_test.dtype}")
        clean = self.clean_y_train
        if clean is not None:
            clean = _as_labels("clean_y_train", clean, num_classes)
            if clean.shape != y_train.shape:
                raise ValueError(f"clean_y_train has shape {clean.shape} but y_train has shape {y_train.shape}")
        # Frozen: the normalized values are written through object.__setattr__.
        for field, value in (
            ("x_train", x_train),
            ("x_test", x_test),
            ("y_train", y_train),
            ("y_test", y_test),
            ("num_classes", num_classes),
            ("clean_y_train", clean),
        ):
            object.__setattr__(self, field, value)

    @property
    def n_train(self) -> int:
        """Number of training examples."""
        return len(self.y_train)

    @property
    def n_test(self) -> int:
        """Number of test examples."""
        return len(self.y_test)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. ``(28, 28, 1)`` or ``(40,)``."""
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        # The default repr would print whole arrays.
        noisy = "" if self.clean_y_train is None else ", noisy labels"
        return (
            f"ArrayDataset({self.name!r}, train={self.n_train}, test={self.n_test}, "
            f"input={self.input_shape} {self.x_train.dtype}, classes={self.num_classes}{noisy})"
        )
