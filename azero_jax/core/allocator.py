"""Keeps freed memory in the process between search steps (glibc only).

A search step allocates and frees a few megabytes of temporary arrays (pair keys, masks,
fingerprint errors, the evaluator's outputs). With glibc's default settings, ``free``
returns the top of the heap to the kernel as soon as more than 128 KiB lie free there, and
arrays above 128 KiB are ``mmap``-ed one by one; the next step then page-faults the same
memory back in. That cost 0.3-0.4 us a child in the host-only benchmark at B = 1024
(about 15 % of all host work), and how much of it a given run paid depended on the
allocation history -- the same benchmark ran in two modes, 2.3 and 2.6 us a child.

:func:`keep_freed_memory` raises both thresholds once per process, so the step's working
set stays mapped (at most a few tens of megabytes more resident memory). Searches call it
when they are created. ``AZERO_JAX_KEEP_FREED_MEMORY=0`` turns it off; on other C
libraries (macOS, musl) it does nothing.

Example:
  >>> from azero_jax.core import allocator
  >>> allocator.keep_freed_memory() in (True, False)
  True
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
# glibc accepts at most half its 64 MiB arena size for the mmap threshold.
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 128 << 20

_applied: bool | None = None


def enabled() -> bool:
    """False when ``AZERO_JAX_KEEP_FREED_MEMORY`` is ``0`` (``false``, ``no``, ``off``)."""
    return os.environ.get("AZERO_JAX_KEEP_FREED_MEMORY", "1").strip().lower() not in (
        "0", "false", "no", "off")


def keep_freed_memory() -> bool:
    """Sets glibc's trim and mmap thresholds (once per process); True if they were set."""
    global _applied
    if _applied is None:
        _applied = enabled() and _set_thresholds()
    return _applied


def _set_thresholds() -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # glibc only: other libraries' mallopt means other things
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
