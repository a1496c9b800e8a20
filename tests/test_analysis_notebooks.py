"""The Colab notebooks: generated from tools/build_notebooks.py, Colab-ready, CI budgets.

Executing them is not part of the unit tests: CI runs ``tools/run_notebooks.py``.
"""

from __future__ import annotations

import ast
import importlib.util
import os

import pytest

nbformat = pytest.importorskip("nbformat")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = ("quickstart.ipynb", "rediscover_backprop.ipynb", "analyze_algorithm.ipynb")


def _builder():
    spec = importlib.util.spec_from_file_location(
        "build_notebooks", os.path.join(ROOT, "tools", "build_notebooks.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _code(notebook):
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def test_committed_notebooks_are_the_generated_ones(tmp_path):
    paths = _builder().build(str(tmp_path))
    assert sorted(os.path.basename(p) for p in paths) == sorted(NAMES)
    for name in NAMES:
        committed = nbformat.read(os.path.join(ROOT, "colab", name), as_version=4)
        generated = nbformat.read(str(tmp_path / name), as_version=4)
        assert [c.source for c in committed.cells] == [c.source for c in generated.cells], (
            f"colab/{name} differs from tools/build_notebooks.py: run it to regenerate")


@pytest.mark.parametrize("name", NAMES)
def test_notebook_shape(name):
    notebook = nbformat.read(os.path.join(ROOT, "colab", name), as_version=4)
    nbformat.validate(notebook)
    code = _code(notebook)
    install, gpu = code[0], code[1]
    assert install.splitlines()[1].startswith("REPO_URL = ")
    assert 'find_spec("azero_jax") is None' in install
    assert "AZERO_CI" in gpu and "default_backend()" in gpu
    for source in code:
        tree = ast.parse(source)  # valid Python, no magics
        for node in ast.walk(tree):
            # No logic copied into cells: at most a few-line callback.
            if isinstance(node, ast.FunctionDef):
                assert node.end_lineno - node.lineno <= 3, f"{name}: {node.name} too long"
            assert not isinstance(node, ast.ClassDef)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
