"""User-facing errors: one base class, and the binaries' one-line error reporting.

Everything a user can get wrong -- a spec, a data file, a checkpoint folder, a
configuration -- raises an :class:`AzeroError`. The binaries print its message as one
line (``error: <message>``) and exit with status 2; any other exception is a bug in
this package and keeps its traceback. Each subclass is also a ``ValueError``, so code
written against the earlier ``ValueError``\\ s keeps working.

Example:
    >>> try:
    ...     raise ConfigError("--num_seeds must be >= 1, got 0")
    ... except ValueError as error:
    ...     isinstance(error, AzeroError), str(error)
    (True, '--num_seeds must be >= 1, got 0')
"""

from __future__ import annotations

import errno
import sys

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

# OS errors that describe the user's machine (a full disk, a missing or protected path),
# not a bug: the binaries report them in one line like an AzeroError.
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.ENOENT,
                       errno.EROFS, errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.ENAMETOOLONG,
                       errno.EFBIG, errno.EIO}


class AzeroError(ValueError):
    """A problem with what the user gave (spec, data, checkpoint, configuration)."""


class ConfigError(AzeroError):
    """A flag, option or configuration value is invalid or cannot be honoured."""


class SpecError(ConfigError):
    """A search spec or task collection is malformed or inconsistent."""


class DataError(AzeroError):
    """Task data is unusable (non-finite values, labels that do not fit the eval type)."""


class CheckpointError(AzeroError):
    """A checkpoint folder cannot be used: locked, of another run or mode, unreadable."""


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line (continuation lines joined with '; ')."""
    if isinstance(error, OSError) and not isinstance(error, AzeroError) and error.strerror:
        text = error.strerror + (f": {error.filename}" if error.filename else "")
    else:
        text = str(error) or type(error).__name__
    return "; ".join(part.strip() for part in text.splitlines() if part.strip())


def is_user_error(error: BaseException) -> bool:
    """True for errors the binaries report in one line instead of a traceback."""
    if isinstance(error, AzeroError):
        return True
    return isinstance(error, OSError) and error.errno in _ENVIRONMENT_ERRNOS


def run_main(main) -> None:
    """``absl.app.run(main)`` where user errors print one line and exit non-zero.

    An :class:`AzeroError` (or an OS error about the user's files: missing, protected,
    disk full) prints ``error: <message>`` on stderr and exits with status 2; a
    Ctrl-C that aborts (the second one) exits with 130 and one line. Anything else
    propagates with its traceback: it is a bug.
    """
    from absl import app

    def guarded(argv):
        try:
            return main(argv)
        except app.UsageError:
            raise
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr, flush=True)
            sys.exit(EXIT_INTERRUPTED)
        except Exception as error:  # noqa: BLE001 -- re-raised unless it is the user's
            if not is_user_error(error):
                raise
            print(f"error: {one_line(error)}", file=sys.stderr, flush=True)
            sys.exit(EXIT_USER_ERROR)

    app.run(guarded)


__all__ = ["AzeroError", "ConfigError", "SpecError", "DataError", "CheckpointError",
           "one_line", "is_user_error", "run_main", "EXIT_USER_ERROR", "EXIT_INTERRUPTED"]
