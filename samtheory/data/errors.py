"""The one exception type of :mod:`samtheory.data`."""

from __future__ import annotations

import os

__all__ = ["DataError"]


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
