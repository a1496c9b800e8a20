"""The one exception type every dataset reader raises for a bad or missing file."""

from __future__ import annotations

import os

from azero_jax.core.errors import AzeroError


class DatasetError(AzeroError):
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
        require_readable_parent(path)
        raise DatasetNotFoundError(path, "no such file" + (f" ({hint})" if hint else ""))
    if os.path.isdir(path):
        raise DatasetError(path, "is a folder, expected a file")
    return path


def require_readable_parent(path) -> None:
    """Raises :class:`DatasetError` "permission denied" when a folder above ``path`` hides it.

    ``os.path.exists`` is False both for a missing file and for one inside a folder the
    user may not enter; the second must not read as "no such file".
    """
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    while folder and not os.path.isdir(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            return
        folder = parent
    if not os.access(folder, os.R_OK | os.X_OK):
        raise DatasetError(folder, "permission denied (cannot read this folder)")


def require_folder(path, expected: str) -> str:
    """Returns ``path`` as a string if it is a folder the user may read, else raises.

    Raises:
      DatasetNotFoundError: no such folder (the message says what was ``expected``).
      DatasetError: a file where a folder was expected, or permission denied.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        if os.path.exists(path):
            raise DatasetError(path, f"is a file, expected a folder ({expected})")
        require_readable_parent(path)
        raise DatasetNotFoundError(path, f"no such folder ({expected})")
    if not os.access(path, os.R_OK | os.X_OK):
        raise DatasetError(path, "permission denied (cannot read this folder)")
    return path
