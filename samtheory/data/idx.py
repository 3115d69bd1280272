"""Reading and writing IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number -- two zero bytes, a type code, the
number of dimensions -- then one big-endian ``uint32`` per dimension, then
the values in C order, big-endian. Files may be gzip-compressed; that is
detected from the content, not the file name.

The reader refuses anything that does not match its header exactly: a
payload that is shorter *or longer* than the dimensions say, an unknown type
code, a truncated or corrupt gzip stream. Each of these raises
:class:`~samtheory.data.DataError` naming the file.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from samtheory.data.errors import DataError, read_data_file
from samtheory.results import atomic_write_bytes

__all__ = ["read_idx", "write_idx", "IDX_DTYPES"]

#: IDX type code -> big-endian NumPy dtype of the stored values.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF_KIND = {(dt.kind, dt.itemsize): code for code, dt in IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    raw = read_data_file(path, "an IDX file")
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError as err:
        raise DataError(f"truncated gzip stream ({err})", path) from err
    except (OSError, zlib.error) as err:
        # gzip.BadGzipFile (an OSError) covers a bad CRC or length trailer.
        raise DataError(f"corrupt gzip stream ({err})", path) from err


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read the IDX file at ``path`` (plain or gzip) into a native-endian array.

    Returns a new, writable array of the stored dtype (``uint8``, ``int8``,
    ``int16``, ``int32``, ``float32`` or ``float64``) and shape. Raises
    :class:`~samtheory.data.DataError` naming ``path`` if the file is
    missing, truncated, has trailing data, a bad magic number or an unknown
    type code, or is a corrupt gzip stream.
    """
    file = Path(path)
    data = _read_bytes(file)
    if len(data) < 4:
        raise DataError(f"only {len(data)} bytes, too short for an IDX magic number", file)
    zero0, zero1, code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0:
        raise DataError(f"bad IDX magic number 0x{data[:4].hex()} (must start with two zero bytes)", file)
    if code not in IDX_DTYPES:
        raise DataError(f"unknown IDX type code 0x{code:02x} (known: {sorted(hex(c) for c in IDX_DTYPES)})", file)
    if ndim == 0:
        raise DataError("IDX header declares 0 dimensions", file)
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(f"truncated IDX header: {ndim} dimensions need {header_len} bytes, file has {len(data)}", file)
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = header_len + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "trailing data"
        raise DataError(
            f"{what}: header says shape {shape} of {dtype.name} ({expected} bytes in all), file has {len(data)} bytes",
            file,
        )
    values = np.frombuffer(data, dtype=dtype, offset=header_len)
    # astype copies, so the result owns writable memory in native byte order.
    return values.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` to ``path`` as an IDX file, gzip-compressed if ``path`` ends in ``.gz``.

    ``array`` must have 1 to 255 dimensions, each below ``2**32``, and a dtype
    IDX can store: ``uint8``, ``int8``, ``int16``, ``int32``, ``float32`` or
    ``float64`` (any byte order). The file is replaced atomically
    (:func:`samtheory.results.atomic_write_bytes`), and the gzip header
    carries no time stamp, so equal arrays give equal files.
    """
    arr = np.asarray(array)
    code = _CODE_OF_KIND.get((arr.dtype.kind, arr.dtype.itemsize))
    if code is None:
        raise ValueError(
            f"array: dtype {arr.dtype} cannot be stored in IDX; "
            "cast to one of uint8, int8, int16, int32, float32, float64"
        )
    if not 1 <= arr.ndim <= 255:
        raise ValueError(f"array: IDX stores 1 to 255 dimensions, got {arr.ndim}")
    if any(d >= 2**32 for d in arr.shape):
        raise ValueError(f"array: every IDX dimension must be < 2**32, got shape {arr.shape}")
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    payload = np.ascontiguousarray(arr, dtype=IDX_DTYPES[code]).tobytes()
    content = header + payload
    if os.fspath(path).endswith(".gz"):
        content = gzip.compress(content, compresslevel=6, mtime=0)
    atomic_write_bytes(path, content)
