"""Every example in the package's docstrings runs and prints what it shows (the docs'
short examples are part of the API's documentation, so they must stay true)."""

import doctest
import importlib
import os
import pkgutil
import subprocess
import sys

import pytest

import azero_jax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = sorted(name for _, name, _ in pkgutil.walk_packages(azero_jax.__path__, "azero_jax."))
# Modules of optional extras: without the extra they cannot be imported at all.
OPTIONAL = {"azero_jax.islands.ray_actors": "ray"}
# The binaries define absl flags in one global registry, some with the same name
# (--backend): each is imported in a process of its own.
BINARIES = {name for name in MODULES if name.startswith("azero_jax.cli.")}
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, monkeypatch):
    if name in OPTIONAL:
        pytest.importorskip(OPTIONAL[name])
    if name in BINARIES:
        code = ("import doctest, importlib, sys; "
                f"result = doctest.testmod(importlib.import_module({name!r}), optionflags={FLAGS}); "
                "sys.exit(1 if result.failed else 0)")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              cwd=ROOT, timeout=120)
        assert done.returncode == 0, f"examples failed in {name}: {done.stdout[-2000:]}" \
            f"{done.stderr[-2000:]}"
        return
    module = importlib.import_module(name)
    monkeypatch.chdir(ROOT)  # examples read the repository's spec files
    result = doctest.testmod(module, optionflags=FLAGS, verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
