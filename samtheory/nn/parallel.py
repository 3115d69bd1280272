"""Data parallelism with ``jax.sharding``: one mesh axis ``"data"``, batch sharded, state replicated.

The training program is written for one global batch; the mesh only tells
XLA's SPMD partitioner how to lay it out. The batch (and, for m-SAM, the
chunk axis) is split over the devices, parameters, optimizer state and
BatchNorm statistics are replicated, and the partitioner inserts the
all-reduces: gradients are averaged and BatchNorm batch statistics are taken
over the *global* batch (synchronized BatchNorm). So the result does not
depend on the number of devices (up to the order of floating-point sums),
and neither do the m-SAM chunks: ``m`` is set by the user, each chunk is
``m`` consecutive examples of the global batch ([m]).

Requirements checked by :func:`check_batch_layout`: the global batch is
divisible by the number of devices and by ``m``. When the number of chunks
is divisible by the number of devices too, each device holds whole chunks
and the perturbed passes need no communication.

Multi-host: call ``jax.distributed.initialize()`` first; :func:`data_mesh`
then spans ``jax.devices()`` (all hosts), :func:`replicate` builds global
arrays from the identical host copies every process holds, and
:func:`to_host` reads replicated arrays from the local shard. See
docs/resnet.md.

Conventions: [m].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from samtheory._validation import check_positive_int

__all__ = [
    "DATA_AXIS",
    "data_mesh",
    "batch_sharding",
    "replicated_sharding",
    "check_batch_layout",
    "replicate",
    "to_host",
    "batch_constraint",
    "chunk_constraint",
]

DATA_AXIS = "data"


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh named ``"data"`` over ``devices`` (default: all devices of all processes)."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices must not be empty")
    return Mesh(np.array(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (example) axis split over ``"data"``, other axes whole."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """A full copy on every device."""
    return NamedSharding(mesh, P())


def check_batch_layout(batch_size: int, m: int | None, num_devices: int) -> None:
    """Raise ``ValueError`` naming the parameter unless ``num_devices | batch_size`` and ``m | batch_size``. [m]."""
    check_positive_int("batch_size", batch_size)
    check_positive_int("num_devices", num_devices)
    if batch_size % num_devices:
        raise ValueError(
            f"batch_size must be divisible by the number of devices: batch_size={batch_size}, devices={num_devices}"
        )
    if m is not None:
        check_positive_int("m", m)
        if batch_size % m:
            raise ValueError(f"m must divide batch_size: m={m}, batch_size={batch_size}")


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Place a pytree of host (or single-device) arrays on every device of ``mesh``.

    Built with ``jax.make_array_from_callback`` so that it also works on
    several hosts, each of which holds the same values.
    """
    sharding = replicated_sharding(mesh)

    def put(x):
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, tree)


def to_host(tree: Any) -> Any:
    """NumPy copies of replicated (or single-device) arrays, read from this process's first shard."""

    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(x.addressable_data(0))
        return np.asarray(x)

    return jax.tree.map(get, tree)


def batch_constraint(mesh: Mesh) -> Callable[[Any], Any]:
    """Inside ``jit``: pin the leading axis of every leaf to ``"data"``."""
    sharding = batch_sharding(mesh)
    return lambda tree: jax.lax.with_sharding_constraint(tree, jax.tree.map(lambda _: sharding, tree))


def chunk_constraint(mesh: Mesh, num_chunks: int) -> Callable[[Any], Any] | None:
    """Inside ``jit``: put whole m-SAM chunks on devices when their number allows, else ``None``. [m]."""
    if mesh.size == 1 or num_chunks % mesh.size:
        return None
    return batch_constraint(mesh)
