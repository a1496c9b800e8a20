"""The one exception type every dataset reader raises for a bad or missing file."""

from __future__ import annotations

import os


class DatasetError(ValueError):
    """A dataset file is missing, truncated or malformed; the message names the file.

    Example:
        >>> str(DatasetError("/tmp/x.bin", "truncated: 10 bytes, expected 3073"))
        '/tmp/x.bin: truncated: 10 bytes, expected 3073'
    """

    def __init__(self, path, problem: str):
        self.path = os.fspath(path) if path is not None else "<memory>"
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset file or folder does not exist (also a ``FileNotFoundError``)."""


def require_file(path, hint: str = "") -> str:
    """Returns ``path`` as a string, or raises :class:`DatasetNotFoundError`."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DatasetNotFoundError(path, "no such file" + (f" ({hint})" if hint else ""))
    if os.path.isdir(path):
        raise DatasetError(path, "is a folder, expected a file")
    return path
