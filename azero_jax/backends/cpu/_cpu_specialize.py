"""Copies of the CPU kernels specialised for one feature size F (private).

:mod:`azero_jax.backends.cpu._cpu_kernels` reads F from the task table unless its module constant
``_F_CONST`` is positive. For a small F this module writes a copy of that source with
``_F_CONST = F`` into a cache folder and imports it, so numba sees F as a compile-time
constant: LLVM then unrolls the per-entry loops of vectors and matrices and drops the
runtime trip counts (about 1.5x faster for F = 4 and 16). numba caches each copy's
machine code beside it (``cache=True``), so only the first process pays the compile.

The folder is ``$AZERO_JAX_CACHE_DIR`` or ``~/.cache/azero_jax/cpu_kernels`` (a temporary
folder if neither is writable). ``AZERO_JAX_CPU_SPECIALIZE=0`` disables specialisation.

Example:
    >>> from azero_jax.backends.cpu import _cpu_specialize
    >>> module = _cpu_specialize.kernels_for(4)
    >>> module._F_CONST in (0, 4)
    True
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading

from azero_jax.backends import _eigen_order
from azero_jax.backends.cpu import _cpu_kernels

# Feature sizes that get their own compiled copy; others use the generic kernels.
# (The reference's sizes; each costs one compile, about 6 s of CPU, once per machine.)
SPECIALIZED_SIZES = frozenset({2, 4, 8, 16, 32})
_MARKER = "\n_F_CONST = 0\n"
_LOCK = threading.Lock()
_MODULES: dict[int, object] = {}


def enabled() -> bool:
    return os.environ.get("AZERO_JAX_CPU_SPECIALIZE", "1").strip().lower() not in (
        "0", "false", "no", "off")


def cache_dir() -> str:
    """The folder holding the specialised sources (created if needed)."""
    candidates = []
    if os.environ.get("AZERO_JAX_CACHE_DIR"):
        candidates.append(os.path.join(os.environ["AZERO_JAX_CACHE_DIR"], "cpu_kernels"))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    candidates.append(os.path.join(base, "azero_jax", "cpu_kernels"))
    candidates.append(os.path.join(tempfile.gettempdir(), f"azero_jax_{os.getuid()}",
                                   "cpu_kernels"))
    for path in candidates:
        try:
            os.makedirs(path, exist_ok=True)
            if os.access(path, os.W_OK):
                return path
        except OSError:
            continue
    raise OSError(f"no writable cache folder among {candidates}; set AZERO_JAX_CACHE_DIR")


def _source(F: int) -> str:
    with open(_cpu_kernels.__file__, encoding="utf-8") as f:
        text = f.read()
    if _MARKER not in text:  # pragma: no cover - guards against an edit of _cpu_kernels
        raise RuntimeError("azero_jax.backends.cpu._cpu_kernels lost its '_F_CONST = 0' line")
    # The kernels inline azero_jax.backends._eigen_order, whose edits numba's cache would not
    # notice: its hash in the copy's text gives an edited helper module a fresh copy.
    with open(_eigen_order.__file__, "rb") as f:
        helpers = hashlib.sha1(f.read()).hexdigest()[:12]
    text = _inline_pair_body(text)
    return text.replace(_MARKER, f"\n_F_CONST = {int(F)}  # _eigen_order {helpers}\n", 1)


_PAIR_DEF = "\ndef evaluate_pair("
_CHUNK_DEF = "\n\n@numba.njit(**_JIT)\ndef evaluate_chunk("
_PAIR_CALL = "        evaluate_pair(p, "


def _inline_pair_body(text: str) -> str:
    """``evaluate_chunk`` with ``evaluate_pair``'s body written into its loop over pairs.

    ``evaluate_pair`` is the one statement of the evaluation loop that the CUDA backend
    compiles too; called once per pair from the CPU's loop it cost ~0.2 us a pair (the
    demo search's fingerprint runs are 20 steps a pair: 14 % of its time), numba's
    ``inline="always"`` did not recover it, and the copy in the loop does. Returns the text
    unchanged if its shape is not the expected one (the call then stays).
    """
    start = text.find(_PAIR_DEF)
    end = text.find(_CHUNK_DEF)
    call = text.find(_PAIR_CALL, end)
    if min(start, end, call) < 0:
        return text
    body = text[start:end]
    quote = body.find('"""')
    close = body.find('"""', quote + 3)
    if quote < 0 or close < 0:
        return text
    lines = body[close + 3:].split("\n")[1:]
    if any(line.strip().startswith("return") for line in lines):
        return text
    inlined = "\n".join(("    " + line) if line.strip() else line for line in lines).rstrip()
    call_end = text.find(")\n", call) + 2
    return text[:call] + inlined.lstrip("\n") + "\n" + text[call_end:]


def _write_if_changed(path: str, text: str) -> None:
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return  # unchanged: keep its mtime so numba's on-disk cache stays valid
    except OSError:
        pass
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def kernels_for(F: int):
    """The kernel module to run tasks of feature size ``F`` with."""
    F = int(F)
    if not enabled() or F not in SPECIALIZED_SIZES:
        return _cpu_kernels
    module = _MODULES.get(F)
    if module is not None:
        return module
    with _LOCK:
        module = _MODULES.get(F)
        if module is not None:
            return module
        text = _source(F)
        digest = hashlib.sha1(text.encode()).hexdigest()[:12]
        name = f"azero_cpu_kernels_f{F}_{digest}"
        path = os.path.join(cache_dir(), name + ".py")
        _write_if_changed(path, text)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        _MODULES[F] = module
        return module
