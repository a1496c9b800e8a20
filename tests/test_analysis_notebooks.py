"""The Colab notebooks: written from their py:percent sources in colab/, Colab-ready.

Executing them is not part of the unit tests: CI runs ``tools/run_notebooks.py``.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import os
import sys
import types
from contextlib import redirect_stdout

import pytest

nbformat = pytest.importorskip("nbformat")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = ("analyze_algorithm", "quickstart", "rediscover_backprop")


def _builder():
    spec = importlib.util.spec_from_file_location(
        "build_notebooks", os.path.join(ROOT, "tools", "build_notebooks.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(name):
    return nbformat.read(os.path.join(ROOT, "colab", name + ".ipynb"), as_version=4)


def _code(notebook):
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def test_committed_notebooks_are_exactly_the_converted_sources(tmp_path):
    builder = _builder()
    assert [os.path.basename(p) for p in builder.sources()] == [n + ".py" for n in NAMES]
    paths = builder.build(str(tmp_path))
    for name, path in zip(NAMES, paths):
        with open(os.path.join(ROOT, "colab", name + ".ipynb")) as committed, open(path) as new:
            assert committed.read() == new.read(), (
                f"colab/{name}.ipynb differs from colab/{name}.py: run tools/build_notebooks.py")
    assert builder.stale() == [] and builder.main(["--check"]) == 0


def test_percent_format_cells_includes_and_fills(tmp_path):
    builder = _builder()
    cells = builder.parse_percent('# %% [markdown]\n# # Title\n#\n# text\n\n# %%\nx = 1\n\n\n'
                                  '# %%\nFIGURE6 = """\n"""  # text of azero_jax/algorithms/'
                                  'figure6.txt, filled in by tools/build_notebooks.py\n')
    assert [(c.cell_type, c.source) for c in cells[:2]] == [("markdown", "# Title\n\ntext"),
                                                            ("code", "x = 1")]
    with open(os.path.join(ROOT, "azero_jax", "algorithms", "figure6.txt")) as handle:
        assert cells[2].source == f'FIGURE6 = """\n{handle.read()}"""'
    setup = builder.read_cells(os.path.join(ROOT, "colab", "_setup.py"))
    included = builder.parse_percent('# %% include="_setup.py"\n')
    assert [c.source for c in included] == [c.source for c in setup] and len(setup) == 3
    for bad in ("x = 1\n# %%\n", "# %% [raw]\n", "# %% [markdown]\nnot a comment\n",
                '# %% include="_setup.py"\nx = 1\n'):
        with pytest.raises(ValueError):
            builder.parse_percent(bad)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_shape(name):
    notebook = _read(name)
    nbformat.validate(notebook)
    assert notebook.cells[0].cell_type == "markdown"
    assert notebook.cells[0].source.startswith("# ")
    how = notebook.cells[1].source  # says how the install cell finds the package
    assert "colab.research.google.com/github/" in how
    assert "python -m pip wheel . --no-deps -w dist" in how and "azero_jax-*.whl" in how
    code = _code(notebook)
    install, machine = code[0], code[1]
    assert 'find_spec("azero_jax") is not None' in install and "files.upload()" in install
    assert "OWNER" not in install.split("\n", 1)[1]  # no placeholder address is used
    assert "AZERO_CI" in machine and "default_backend()" in machine
    for source in code:
        tree = ast.parse(source)  # valid Python, no magics
        for node in ast.walk(tree):
            # No logic copied into cells: at most a few-line callback.
            if isinstance(node, ast.FunctionDef):
                assert node.end_lineno - node.lineno <= 3, f"{name}: {node.name} too long"
            assert not isinstance(node, ast.ClassDef)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")


def test_texts_kept_once_under_experiments():
    sources = {n: open(os.path.join(ROOT, "colab", n + ".py")).read() for n in NAMES}
    assert "s4 = 0.0018" not in sources["analyze_algorithm"]
    assert "s4 = 0.0018" in "".join(_code(_read("analyze_algorithm")))
    assert "VECTOR_INNER_PRODUCT_OP" not in sources["quickstart"]
    assert "run_demo.sh" in "".join(_code(_read("quickstart")))


@pytest.mark.parametrize("name", NAMES)
def test_notebook_code_is_lint_clean(name):
    pyflakes = pytest.importorskip("pyflakes.api")
    from pyflakes import reporter
    # The program a notebook runs: its cells top to bottom, the set-up cells included.
    program = "\n\n".join(_code(_read(name))) + "\n"
    out, err = io.StringIO(), io.StringIO()
    assert pyflakes.check(program, f"colab/{name}.ipynb", reporter.Reporter(out, err)) == 0, \
        out.getvalue() + err.getvalue()


def _run_install_cell(monkeypatch, sessions_reply, uploaded=("azero_jax-0.1.0-py3-none-any.whl",)):
    """Runs the install cell as on a Colab machine without azero_jax; returns pip's target."""
    import importlib.util as util
    import subprocess
    import urllib.request

    real_find_spec = util.find_spec
    monkeypatch.setattr(util, "find_spec",
                        lambda name, *a: None if name == "azero_jax" else real_find_spec(name, *a))

    def urlopen(address, timeout):
        assert address == "http://172.28.0.12:9000/api/sessions"
        if isinstance(sessions_reply, Exception):
            raise sessions_reply
        return io.BytesIO(json.dumps(sessions_reply).encode())

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.delenv("COLAB_JUPYTER_IP", raising=False)
    calls = []
    monkeypatch.setattr(subprocess, "check_call", calls.append)
    colab = types.ModuleType("google.colab")
    colab.files = types.SimpleNamespace(upload=lambda: {name: b"" for name in uploaded})
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    with redirect_stdout(io.StringIO()):
        exec(_code(_read("quickstart"))[0], {})
    (command,) = calls
    assert command[:5] == [sys.executable, "-m", "pip", "install", "-q"]
    return command[5]


def test_install_cell_installs_from_the_github_repository_it_was_opened_from(monkeypatch):
    path = ("fileId=https%3A%2F%2Fgithub.com%2Fsomeone%2Fazero-fork%2Fblob%2Fdev%2Fcolab"
            "%2Fquickstart.ipynb")
    target = _run_install_cell(monkeypatch, [{"path": path, "name": "quickstart.ipynb"}])
    assert target == "azero_jax[plot] @ git+https://github.com/someone/azero-fork@dev"


@pytest.mark.parametrize("reply", [[{"path": "fileId=1AbCdrive", "name": "x.ipynb"}],
                                   OSError("no Colab server")])
def test_install_cell_otherwise_installs_an_uploaded_wheel(monkeypatch, reply):
    target = _run_install_cell(monkeypatch, reply)
    assert target == os.path.abspath("azero_jax-0.1.0-py3-none-any.whl")
