"""The one exception type of :mod:`samtheory.data`, and the one place that turns a failed read into it."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DataError", "read_data_file"]


class DataError(ValueError):
    """A data file (or directory) is missing, unreadable or not what it claims to be.

    Raised instead of ever returning partial or misread data. The message
    starts with the offending path, so that the user knows which file to
    replace; the path is also kept in :attr:`path` (``None`` if there is
    none, e.g. when a caller raises it with a bare message).

    A ``ValueError`` subclass, so callers that already catch bad-input errors
    catch it too.
    """

    def __init__(self, problem: str, path: str | os.PathLike[str] | None = None) -> None:
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(problem if self.path is None else f"{self.path}: {problem}")


def read_data_file(path: str | os.PathLike[str], expected: str) -> bytes:
    """The bytes of the data file ``path``, or a :class:`DataError` naming it and what was ``expected``.

    ``expected`` says what should be there (``"an IDX file"``), for the
    messages of a missing file and of a directory in its place; any other
    operating-system error is reported with its reason.
    """
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"no such file, expected {expected}", path) from None
    except IsADirectoryError:
        raise DataError(f"is a directory, expected {expected}", path) from None
    except OSError as err:
        raise DataError(f"cannot be read ({err.strerror or err})", path) from err
