"""Training checkpoints: one msgpack file, written atomically, holding the whole run state.

A checkpoint holds the :class:`~samtheory.nn.sam_step.TrainState` (parameters,
BatchNorm statistics, optimizer state, step counter) as arrays, and a JSON
record: the number of completed epochs, the run config, the per-epoch
metrics so far, the seed the run's keys derive from, and whatever the
trainer adds. Every key of a run is a pure function of the seed and the
step ([rng]), so this is all a resumed run needs to continue bitwise as if
it had never stopped.

The file is ``flax.serialization`` msgpack, replaced atomically through
:func:`samtheory.results.atomic_write_bytes`: a kill during a save leaves
the previous checkpoint intact.

Conventions: [rng].
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from samtheory.nn.parallel import to_host
from samtheory.nn.sam_step import TrainState
from samtheory.results import atomic_write_bytes, to_jsonable

__all__ = ["CHECKPOINT_FORMAT", "Checkpoint", "save_checkpoint", "load_checkpoint", "check_fits", "CheckpointError"]

#: Bumped when the layout changes; other formats are refused, not misread.
CHECKPOINT_FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, of another format, or does not fit the model."""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint.

    ``state`` is a :class:`TrainState` of NumPy arrays when a template was
    given to :func:`load_checkpoint`, else the raw nested dict (whose
    ``"params"`` and ``"batch_stats"`` are already the model's plain dicts).
    """

    state: Any
    epoch: int
    config: dict[str, Any]
    metrics: list[dict[str, Any]]
    meta: dict[str, Any]


def save_checkpoint(
    path: str | os.PathLike[str],
    state: TrainState,
    *,
    epoch: int,
    config: dict[str, Any],
    metrics: list[dict[str, Any]],
    meta: dict[str, Any] | None = None,
) -> None:
    """Write ``state`` and its JSON record to ``path`` atomically (see module docstring)."""
    record = {
        "format": CHECKPOINT_FORMAT,
        "epoch": int(epoch),
        "config": to_jsonable(config, where="config"),
        "metrics": to_jsonable(metrics, where="metrics"),
        "meta": to_jsonable(meta or {}, where="meta"),
    }
    host_state = serialization.to_state_dict(to_host(state))
    payload = serialization.msgpack_serialize(
        {"record": json.dumps(record, sort_keys=True, allow_nan=False), "state": host_state}
    )
    atomic_write_bytes(path, payload)


def check_fits(template: Any, restored: Any, path: str | os.PathLike[str]) -> None:
    """Raise :class:`CheckpointError` unless ``restored`` has ``template``'s leaves, shapes and dtypes."""
    wanted = jax.tree_util.tree_flatten_with_path(template)[0]
    got = jax.tree.leaves(restored)
    if len(wanted) != len(got):
        raise CheckpointError(f"{path} holds {len(got)} arrays, the model expects {len(wanted)}")
    for (key_path, want), have in zip(wanted, got):
        if tuple(np.shape(want)) != tuple(np.shape(have)) or np.dtype(want.dtype) != np.asarray(have).dtype:
            raise CheckpointError(
                f"{path}: {jax.tree_util.keystr(key_path)} has shape {np.shape(have)} {np.asarray(have).dtype}, "
                f"the model expects {np.shape(want)} {np.dtype(want.dtype)}"
            )


def load_checkpoint(path: str | os.PathLike[str], template: TrainState | None = None) -> Checkpoint:
    """Read a checkpoint; with ``template`` (arrays or ``jax.ShapeDtypeStruct``) restore a :class:`TrainState`.

    Raises :class:`CheckpointError` (a ``ValueError``) naming the file if it
    is missing, unreadable, of another format, or does not fit ``template``.
    """
    path = Path(path)
    try:
        raw = serialization.msgpack_restore(path.read_bytes())
        record = json.loads(raw["record"])
        state_dict = raw["state"]
    except FileNotFoundError as err:
        raise CheckpointError(f"checkpoint {path} does not exist") from err
    except Exception as err:  # msgpack, JSON and key errors all mean "not a checkpoint"
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(err).__name__}: {err})") from err
    if record.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} has checkpoint format {record.get('format')!r}, expected {CHECKPOINT_FORMAT}")
    state: Any = state_dict
    if template is not None:
        try:
            state = serialization.from_state_dict(template, state_dict)
        except Exception as err:
            raise CheckpointError(f"{path} does not fit the model ({type(err).__name__}: {err})") from err
        check_fits(template, state, path)
    return Checkpoint(state, int(record["epoch"]), record["config"], record["metrics"], record["meta"])
