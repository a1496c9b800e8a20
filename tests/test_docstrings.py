"""Every example in the package's docstrings runs and prints what it shows (the docs'
short examples are part of the API's documentation, so they must stay true)."""

import doctest
import importlib
import os
import pkgutil

import pytest

import azero_jax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = sorted(name for _, name, _ in pkgutil.walk_packages(azero_jax.__path__, "azero_jax."))
# Modules of optional extras: without the extra they cannot be imported at all.
OPTIONAL = {"azero_jax.islands.ray_actors": "ray"}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, monkeypatch):
    if name in OPTIONAL:
        pytest.importorskip(OPTIONAL[name])
    module = importlib.import_module(name)
    monkeypatch.chdir(ROOT)  # examples read the repository's spec files
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
