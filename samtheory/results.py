"""Result files: atomic writes, canonical JSON, ``.npz`` results with provenance.

A *result* is a flat mapping from a key to a NumPy array or a plain scalar
(``float``, ``int``, ``bool``, ``str``). One result is stored as one ``.npz``
file that also holds a JSON *meta* record (config, cache key, provenance), so
a result and the description of how it was made can never get separated or
half-written: the whole file is replaced atomically.

Every file this package writes goes through :func:`atomic_open`: the bytes go
to a temporary file in the target's directory, are flushed and fsync'ed, and
the temporary file is then renamed over the target with :func:`os.replace`.
A reader therefore sees either the old file or the new one, never a mix, and
an exception (or a crash) half-way leaves the old file untouched.

Nothing here touches global JAX state; :func:`provenance` only reads it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib.metadata
import io
import json
import math
import os
import platform
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = [
    "ResultValue",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_update_json",
    "read_json_object",
    "to_jsonable",
    "canonical_json",
    "config_to_dict",
    "cache_key",
    "normalize_result",
    "save_result_npz",
    "load_result_npz",
    "provenance",
]

#: What one entry of a result may be.
ResultValue = np.ndarray | float | int | bool | str

# Bumped if the layout of the ``.npz`` files changes; files of another format
# are treated as unreadable (a cache miss), not misread.
_NPZ_FORMAT = 1
# Name of the npz member holding the JSON meta record. Result keys may not
# start with "__", so this can never collide with one.
_META_MEMBER = "__meta__"

# The distributions whose versions are recorded in the provenance.
_TRACKED_DISTRIBUTIONS = ("numpy", "scipy", "jax", "jaxlib", "optax", "diffrax", "matplotlib")


# --------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------


def _current_umask() -> int:
    # os.umask can only be read by setting it; restore it immediately. (Not
    # thread-safe against concurrent file creation, which this package does
    # not do.)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable. Not every platform can open a
    # directory (Windows), and failing here must not fail the write: the data
    # is already safely in place.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Open ``path`` for binary writing so that it is replaced atomically.

    Use as ``with atomic_open(p) as f: f.write(...)``. The data goes to a
    hidden temporary file next to ``path`` (same directory, hence the same
    file system, so the final :func:`os.replace` is atomic). On a normal exit
    the file is flushed, fsync'ed and renamed over ``path``; if the block
    raises, the temporary file is removed and ``path`` keeps its old content
    (or stays absent). Parent directories are created as needed.

    The new file gets the mode of the file it replaces, or the usual
    ``0o666 & ~umask`` for a new file (a bare temporary file would be 0600).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = target.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o666 & ~_current_umask()
    handle = tempfile.NamedTemporaryFile(
        mode="wb", dir=target.parent, prefix=f".{target.name}.", suffix=".tmp", delete=False
    )
    tmp = Path(handle.name)
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        # BaseException: a KeyboardInterrupt must not leave debris either.
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_directory(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path) as f:
        f.write(data)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as human-readable JSON to ``path`` atomically.

    Keys are sorted and the indentation fixed, so writing the same object
    twice gives the same bytes (no spurious diffs under version control).
    ``obj`` goes through :func:`to_jsonable` first; NaN is refused.
    """
    text = json.dumps(to_jsonable(obj), indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    # An advisory lock on the directory itself, so that two processes doing a
    # read-modify-write of a file in it do not lose each other's update, and
    # no lock file is left lying around. Where flock is unavailable, the
    # update is still atomic, only not serialized.
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platform cannot open directories
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def atomic_update_json(
    path: str | os.PathLike[str], update: Callable[[dict[str, Any]], dict[str, Any]]
) -> dict[str, Any]:
    """Read-modify-write the JSON object in ``path`` atomically; return the new object.

    ``update`` receives the current object (``{}`` if the file does not exist)
    and returns the new one, which is written with :func:`atomic_write_json`.
    Concurrent updaters on one machine are serialized by an advisory lock on
    the directory. A file that exists but is not a JSON object raises
    ``ValueError`` instead of being silently replaced (it may hold entries
    that someone wants to keep).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _directory_lock(target.parent):
        new = update(read_json_object(target))
        atomic_write_json(target, new)
    return new


def read_json_object(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON object in ``path``, ``{}`` if there is no such file.

    A file that is not valid UTF-8 JSON, or holds something other than an
    object, raises ``ValueError`` naming it: it may hold entries someone
    wants to keep, so it is never silently replaced. Callers that will
    update the file later can call this first to fail before doing any work.
    """
    target = Path(path)
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError as err:
        raise ValueError(f"{target} is not UTF-8 text ({err}); fix or remove it") from err
    try:
        current = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{target} is not valid JSON ({err}); fix or remove it") from err
    if not isinstance(current, dict):
        raise ValueError(f"{target} holds a JSON {type(current).__name__}, expected an object; fix or remove it")
    return current


# --------------------------------------------------------------------------
# Canonical JSON, configs and cache keys
# --------------------------------------------------------------------------


def to_jsonable(obj: Any, *, where: str = "value") -> Any:
    """Convert ``obj`` to plain JSON types, refusing anything ambiguous.

    Accepted: ``None``, ``bool``, ``int``, ``float``, ``str``, NumPy scalars,
    lists and tuples (both become lists), dicts with ``str`` keys, and
    dataclass instances (become dicts). Floats ``±inf`` become the strings
    ``"inf"`` / ``"-inf"`` (JSON has no infinity, and an ℓ_∞ radius is a
    legitimate config value); NaN raises ``ValueError``. Anything else
    (arrays, sets, arbitrary objects) raises ``TypeError`` naming ``where``,
    because its JSON form would not be canonical.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        if math.isnan(value):
            raise ValueError(f"{where} is NaN, which has no JSON form")
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name), where=f"{where}.{f.name}") for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{where} has a non-string key {k!r}")
            out[k] = to_jsonable(v, where=f"{where}.{k}")
        return out
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, where=f"{where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(f"{where} has type {type(obj).__name__}, which is not a plain JSON value")


def canonical_json(obj: Any) -> str:
    """The canonical JSON text of ``obj``: sorted keys, no whitespace, ASCII.

    Equal objects (after :func:`to_jsonable`) give equal strings, so this is
    what gets hashed. Floats use Python's shortest round-trip repr, which is
    stable across platforms. Note that ``1`` and ``1.0`` differ: give config
    fields a fixed type.
    """
    return json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def config_to_dict(config: Any) -> dict[str, Any]:
    """The JSON dict of a figure config; refuse configs that cannot be keyed reliably.

    ``config`` must be an instance of a *frozen* dataclass (a config that can
    be mutated after its key was computed would make the cache lie) whose
    fields are plain JSON values, see :func:`to_jsonable`.
    """
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"a figure config must be a dataclass instance, got {type(config).__name__}")
    if not type(config).__dataclass_params__.frozen:  # type: ignore[attr-defined]
        raise TypeError(f"config class {type(config).__name__} must be declared @dataclass(frozen=True)")
    return to_jsonable(config, where=type(config).__name__)


def cache_key(name: str, code_version: int, config: Any) -> str:
    """The sha256 hex digest identifying the result of one figure computation.

    It hashes the canonical JSON of ``{"name", "code_version", "config"}``
    (``config`` a config dataclass or its dict). Same inputs give the same key
    on every machine and run; a change of any config field, of the figure
    name, or of the module's ``CODE_VERSION`` gives a different key.
    """
    config_dict = config if isinstance(config, Mapping) else config_to_dict(config)
    payload = {"name": name, "code_version": int(code_version), "config": config_dict}
    return hashlib.sha256(canonical_json(payload).encode("ascii")).hexdigest()


# --------------------------------------------------------------------------
# Result files
# --------------------------------------------------------------------------


def _check_result_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise TypeError(f"result keys must be non-empty strings, got {key!r}")
    if key.startswith("__") or "/" in key or "\\" in key:
        raise ValueError(f"result key {key!r} is reserved or not a valid file name inside an .npz")
    return key


def normalize_result(result: Mapping[str, Any]) -> dict[str, ResultValue]:
    """Return ``result`` with every value as a NumPy array or a plain Python scalar.

    JAX (or other ``__array__``) arrays become NumPy arrays, NumPy scalars
    become Python scalars. Lists, object arrays and other values raise
    ``TypeError`` naming the key: a result must round-trip through ``.npz``
    without pickle, and what the plot sees must not depend on whether the
    result came from the cache.
    """
    if not isinstance(result, Mapping):
        raise TypeError(f"a result must be a dict, got {type(result).__name__}")
    out: dict[str, ResultValue] = {}
    for key, value in result.items():
        _check_result_key(key)
        if isinstance(value, (bool, np.bool_)):
            out[key] = bool(value)
        elif isinstance(value, (int, np.integer)):
            if not -(2**63) <= int(value) < 2**63:
                raise ValueError(f"result key {key!r}: integer {value} does not fit in int64")
            out[key] = int(value)
        elif isinstance(value, (float, np.floating)):
            out[key] = float(value)
        elif isinstance(value, str):
            out[key] = value
        elif isinstance(value, np.ndarray) or (hasattr(value, "__array__") and not isinstance(value, (list, tuple))):
            arr = np.asarray(value)
            if arr.dtype.hasobject:
                raise TypeError(f"result key {key!r}: arrays of Python objects cannot be stored")
            out[key] = arr
        else:
            raise TypeError(
                f"result key {key!r} has type {type(value).__name__}; use a NumPy array or a float/int/bool/str"
            )
    return out


def _kind(value: ResultValue) -> str:
    # Records what the value was, so loading gives back a Python scalar
    # where a scalar was stored (npz itself only knows arrays).
    if isinstance(value, np.ndarray):
        return "array"
    return type(value).__name__  # "bool", "int", "float" or "str"


def save_result_npz(path: str | os.PathLike[str], result: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    """Atomically write ``result`` and the JSON-able ``meta`` record to one ``.npz`` file.

    ``result`` is normalized with :func:`normalize_result`; ``meta`` (config,
    key, provenance, ...) is stored as UTF-8 JSON in a reserved member. No
    pickle is involved, so the file can be loaded with ``allow_pickle=False``.
    """
    values = normalize_result(result)
    record = {"format": _NPZ_FORMAT, "kinds": {k: _kind(v) for k, v in values.items()}, "meta": to_jsonable(meta)}
    meta_bytes = json.dumps(record, sort_keys=True, allow_nan=False).encode("utf-8")
    members = {k: np.asarray(v) for k, v in values.items()}
    members[_META_MEMBER] = np.frombuffer(meta_bytes, dtype=np.uint8)
    # Serialize in memory first: np.savez wants a seekable file and we want
    # the whole archive to exist before a byte reaches the disk.
    buffer = io.BytesIO()
    np.savez(buffer, **members)
    atomic_write_bytes(path, buffer.getvalue())


def load_result_npz(path: str | os.PathLike[str]) -> tuple[dict[str, ResultValue], dict[str, Any]]:
    """Load a file written by :func:`save_result_npz`; return ``(result, meta)``.

    Scalars come back as the Python type they were saved as. A file without
    the meta member, or of another format version, raises ``ValueError``.
    """
    with np.load(path, allow_pickle=False) as archive:
        if _META_MEMBER not in archive.files:
            raise ValueError(f"{path} is not a samtheory result file (no {_META_MEMBER} member)")
        record = json.loads(archive[_META_MEMBER].tobytes().decode("utf-8"))
        if record.get("format") != _NPZ_FORMAT:
            raise ValueError(f"{path} has result format {record.get('format')!r}, expected {_NPZ_FORMAT}")
        result: dict[str, ResultValue] = {}
        for key, kind in record["kinds"].items():
            arr = archive[key]
            if kind == "array":
                result[key] = arr
            elif kind in ("bool", "int", "float", "str"):
                result[key] = {"bool": bool, "int": int, "float": float, "str": str}[kind](arr.item())
            else:
                raise ValueError(f"{path}: unknown value kind {kind!r} for key {key!r}")
    return result, record["meta"]


# --------------------------------------------------------------------------
# Provenance
# --------------------------------------------------------------------------


def _distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_state(directory: Path) -> dict[str, Any]:
    """Commit and dirty flag of the git working tree holding ``directory``.

    Both are ``None`` when git is missing or ``directory`` is not in a
    repository (an installed package); ``commit`` is ``None`` in a
    repository without commits. The output directory ``paper_figs/`` is left
    out of the dirty check: regenerating figures is not a code change.
    """
    def git(*args: str) -> subprocess.CompletedProcess[str] | None:
        try:
            return subprocess.run(
                ["git", "-C", str(directory), *args],
                capture_output=True,
                text=True,
                timeout=10,
                env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"},
            )
        except (OSError, subprocess.SubprocessError):
            return None

    inside = git("rev-parse", "--is-inside-work-tree")
    if inside is None or inside.returncode != 0 or inside.stdout.strip() != "true":
        return {"commit": None, "dirty": None}
    head = git("rev-parse", "-q", "--verify", "HEAD")
    commit = head.stdout.strip() if head is not None and head.returncode == 0 else None
    status = git("status", "--porcelain", "--", ":(top)", ":(top,exclude)paper_figs")
    dirty = bool(status.stdout.strip()) if status is not None and status.returncode == 0 else None
    return {"commit": commit, "dirty": dirty}


@functools.cache
def _static_provenance() -> dict[str, Any]:
    # Computed once per process: versions, devices and the git state do not
    # change while figures are being made, and git costs a subprocess per
    # call. Holds no hostname, user name or path.
    import jax

    import samtheory

    versions: dict[str, str | None] = {"python": platform.python_version()}
    versions.update({name: _distribution_version(name) for name in _TRACKED_DISTRIBUTIONS})
    versions["samtheory"] = samtheory.__version__
    devices = jax.devices()
    return {
        "versions": versions,
        "platform": {"system": platform.system(), "machine": platform.machine()},
        "jax": {
            "backend": jax.default_backend(),
            "devices": [f"{d.platform}:{d.device_kind}" for d in devices],
        },
        "git": _git_state(Path(samtheory.__file__).resolve().parent),
    }


def provenance(**extra: Any) -> dict[str, Any]:
    """A JSON-able record of how and where a result was computed.

    Contains package versions (python, numpy, scipy, jax, jaxlib, optax,
    diffrax, matplotlib, samtheory), the JAX backend, its devices and whether
    x64 is on ([float]), the git commit and dirty flag of the source tree,
    the OS and machine type, and a UTC timestamp. Nothing personal: no
    hostname, user name or file path. Keyword arguments (e.g.
    ``run_wall_s=...``) are added as given.
    """
    import jax

    record = json.loads(json.dumps(_static_provenance()))  # a deep copy callers may mutate
    # Read now, not cached: the float policy is what matters for this result.
    record["jax"]["x64"] = bool(jax.config.read("jax_enable_x64"))
    record["utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record.update(extra)
    return record
