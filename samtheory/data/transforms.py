"""Transforms of an ``ArrayDataset``: binary sub-problems and symmetric label noise.

Each transform returns a new :class:`~samtheory.data.ArrayDataset` and leaves
its input untouched (arrays it does not change are shared, not copied). It
appends a record ``{"transform": name, ...}`` to ``info["transforms"]``, so
the provenance lists every step in order.

Conventions: [data-layout], [label-noise]. Label noise is drawn with a NumPy
``Generator`` seeded by ``seed``; no global RNG is touched.
"""

from __future__ import annotations

import copy
import numbers
from typing import Any, Literal

import numpy as np

from samtheory.data.dataset import ArrayDataset

__all__ = ["binary_subset", "with_label_noise", "num_noisy_labels"]


def _with_transform(info: dict[str, Any], record: dict[str, Any], **extra: Any) -> dict[str, Any]:
    # Deep copy: the new data set must not share mutable provenance with the
    # old one.
    new_info = copy.deepcopy(info)
    new_info["transforms"] = [*new_info.get("transforms", []), record]
    new_info.update(extra)
    return new_info


def _check_class(name: str, value: Any, num_classes: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value < num_classes:
        raise ValueError(f"{name} must be a class index in [0, {num_classes}), got {value!r}")
    return int(value)


def binary_subset(ds: ArrayDataset, classes: tuple[int, int] | Literal["even_odd"]) -> ArrayDataset:
    """A two-class problem made from ``ds``.

    * ``classes=(a, b)``: keeps only the examples of classes ``a`` and ``b``
      (train and test, original order) and relabels ``a -> 0``, ``b -> 1``.
    * ``classes="even_odd"``: keeps every example, label ``y % 2``.

    ``num_classes`` becomes 2, the name gets ``-{a}vs{b}`` or ``-even_odd``
    appended, and ``info["transforms"]`` records the mapping. Raises
    ``ValueError`` naming ``classes`` for anything else (equal classes,
    indices out of range) and naming ``ds`` if it carries label noise (a
    subset chosen by noisy labels would change the noise rate: take the
    subset first, then add noise), or if the pair leaves no training
    example.
    """
    if ds.clean_y_train is not None:
        raise ValueError("ds has label noise; apply binary_subset before with_label_noise")
    if isinstance(classes, str):
        if classes != "even_odd":
            raise ValueError(f"classes must be a pair (a, b) or 'even_odd', got {classes!r}")
        return ArrayDataset(
            x_train=ds.x_train,
            y_train=ds.y_train % 2,
            x_test=ds.x_test,
            y_test=ds.y_test % 2,
            num_classes=2,
            name=f"{ds.name}-even_odd",
            info=_with_transform(ds.info, {"transform": "binary_subset", "classes": "even_odd", "label": "y % 2"}),
        )
    try:
        a, b = classes
    except (TypeError, ValueError):
        raise ValueError(f"classes must be a pair (a, b) or 'even_odd', got {classes!r}") from None
    a = _check_class("classes[0]", a, ds.num_classes)
    b = _check_class("classes[1]", b, ds.num_classes)
    if a == b:
        raise ValueError(f"classes must be two different classes, got ({a}, {b})")
    keep_train = (ds.y_train == a) | (ds.y_train == b)
    keep_test = (ds.y_test == a) | (ds.y_test == b)
    if not keep_train.any():
        raise ValueError(f"ds has no training example of class {a} or {b}")
    return ArrayDataset(
        x_train=ds.x_train[keep_train],
        y_train=(ds.y_train[keep_train] == b).astype(np.int32),
        x_test=ds.x_test[keep_test],
        y_test=(ds.y_test[keep_test] == b).astype(np.int32),
        num_classes=2,
        name=f"{ds.name}-{a}vs{b}",
        info=_with_transform(ds.info, {"transform": "binary_subset", "classes": [a, b], "label": f"{a}->0, {b}->1"}),
    )


def num_noisy_labels(rate: float, n: int) -> int:
    """How many of ``n`` train labels :func:`with_label_noise` changes: ``round(rate * n)``.

    Python's ``round`` (ties to even). ``rate`` must be in ``[0, 1)``.
    """
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
        raise ValueError(f"rate must be a number in [0, 1), got {rate!r}")
    return round(float(rate) * n)


def with_label_noise(ds: ArrayDataset, rate: float, seed: int) -> ArrayDataset:
    """``ds`` with symmetric label noise on the TRAIN labels ([label-noise]).

    Exactly ``k = round(rate * n_train)`` train examples, chosen uniformly
    without replacement, get a new label drawn uniformly from the *other*
    ``num_classes - 1`` classes. So ``rate`` is the realized fraction of
    wrong train labels (up to the rounding of ``k``), every changed label
    differs from its clean one, and test labels and all inputs are
    unchanged. The clean labels are kept in ``clean_y_train``;
    ``info["label_noise"]`` holds ``rate``, ``seed``, ``num_noisy`` and
    ``realized_rate = k / n_train``, and the same record is appended to
    ``info["transforms"]``. Deterministic in ``seed`` (``rate=0`` returns
    the labels unchanged, with ``clean_y_train`` set).

    Raises ``ValueError`` naming ``rate`` if it is not in ``[0, 1)``,
    ``seed`` if it is not a non-negative integer, and ``ds`` if it already
    carries label noise (noise on noise would blur what ``rate`` means).
    """
    if ds.clean_y_train is not None:
        raise ValueError("ds already has label noise (clean_y_train is set); add noise once, to the clean data set")
    num_noisy = num_noisy_labels(rate, ds.n_train)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    noisy_index = rng.choice(ds.n_train, size=num_noisy, replace=False)
    # An offset in 1..K-1 added mod K is uniform over the other K-1 classes.
    offset = rng.integers(1, ds.num_classes, size=num_noisy)
    noisy = ds.y_train.copy()
    noisy[noisy_index] = (noisy[noisy_index] + offset) % ds.num_classes
    record = {
        "transform": "label_noise",
        "kind": "symmetric, other classes",
        "rate": float(rate),
        "seed": int(seed),
        "num_noisy": num_noisy,
        "realized_rate": num_noisy / ds.n_train,
    }
    return ArrayDataset(
        x_train=ds.x_train,
        y_train=noisy,
        x_test=ds.x_test,
        y_test=ds.y_test,
        num_classes=ds.num_classes,
        name=f"{ds.name}-noise{float(rate):g}",
        info=_with_transform(ds.info, record, label_noise={k: v for k, v in record.items() if k != "transform"}),
        clean_y_train=ds.y_train.copy(),
    )
