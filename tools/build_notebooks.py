'''Writes the Colab notebooks ``colab/*.ipynb`` from their jupytext ``py:percent`` sources.

Each ``colab/NAME.py`` (but ``colab/_setup.py``) is the source of ``colab/NAME.ipynb``:
plain Python that linters and tests read, cells marked the jupytext way (``# %%`` starts
a code cell, ``# %% [markdown]`` a markdown cell written as ``# `` comments), so jupytext
opens it too. Two additions are expanded here, so that a notebook is self-contained on a
Colab machine that has nothing but the notebook:

* the cell ``# %% include="_setup.py"`` becomes the cells of ``colab/_setup.py`` (the
  install and machine cells every notebook starts with, written once). Its body, ``from
  _setup import CI, az``, names what the notebook uses of them, so that linters read the
  source alone;
* a line ``NAME = """`` followed by ``"""  # text of PATH, filled in by
  tools/build_notebooks.py`` gets the text of the repository file PATH between the quotes
  (the Figure 6 algorithm and the demo spec are written once, as package data under
  ``azero_jax/algorithms/`` and ``azero_jax/specs/``).

The conversion is ours, not jupytext's: it is a page of code on ``nbformat`` (already in
the ``test`` and ``notebooks`` extras), needs no new dependency, and jupytext has neither
expansion. Edit the ``.py`` sources, then::

    python tools/build_notebooks.py          # rewrites colab/*.ipynb
    python tools/build_notebooks.py --check  # exit status 1 if one is not up to date

``tools/run_notebooks.py`` executes the notebooks; ``tests/test_analysis_notebooks.py``
checks that the committed ones are exactly what this writes.
'''

from __future__ import annotations

import argparse
import glob
import os
import re
import sys

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLAB = os.path.join(ROOT, "colab")
SETUP = "_setup.py"

_CELL = re.compile(r"# %%(?: \[(?P<kind>markdown)\])?(?: include=\"(?P<include>[^\"]+)\")?$")
_FILL = re.compile(r'^(\w+ = """)\n"""  # text of (\S+), filled in by tools/build_notebooks\.py$',
                   re.MULTILINE)
METADATA = {
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
    "accelerator": "GPU",
    "colab": {"provenance": []},
}


def sources() -> list[str]:
    """The notebook sources, ``colab/*.py`` but the shared set-up, sorted."""
    return sorted(path for path in glob.glob(os.path.join(COLAB, "*.py"))
                  if os.path.basename(path) != SETUP)


def _fill(match: re.Match) -> str:
    with open(os.path.join(ROOT, match.group(2))) as handle:
        return f'{match.group(1)}\n{handle.read()}"""'


def parse_percent(text: str, where: str = "<text>") -> list:
    """The cells of a ``py:percent`` text, includes expanded and texts filled in."""
    chunks: list[tuple[re.Match, list[str]]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("# %%"):
            marker = _CELL.match(line)
            if marker is None:
                raise ValueError(f"{where}:{number}: unsupported cell marker {line!r}")
            chunks.append((marker, []))
        elif chunks:
            chunks[-1][1].append(line)
        elif line.strip():
            raise ValueError(f"{where}:{number}: text before the first '# %%' cell marker")
    cells = []
    for marker, lines in chunks:
        source = "\n".join(lines).strip("\n")
        if marker["include"]:
            module = os.path.splitext(marker["include"])[0]
            if source and not source.startswith(f"from {module} import "):
                raise ValueError(f"{where}: an include cell holds only "
                                 f"'from {module} import <names it defines>'")
            base = os.path.dirname(where) if os.path.isfile(where) else COLAB
            cells += read_cells(os.path.join(base, marker["include"]))
        elif marker["kind"] == "markdown":
            if any(line and not line.startswith("#") for line in source.splitlines()):
                raise ValueError(f"{where}: a markdown cell holds a line that is not a comment")
            cells.append(new_markdown_cell("\n".join(
                re.sub(r"^# ?", "", line) for line in source.splitlines())))
        else:
            cells.append(new_code_cell(_FILL.sub(_fill, source)))
    return cells


def read_cells(path: str) -> list:
    """The cells of one ``py:percent`` file."""
    with open(path) as handle:
        return parse_percent(handle.read(), path)


def notebook_text(path: str) -> str:
    """The ``.ipynb`` text of the notebook whose source is ``path``."""
    cells = read_cells(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    for i, cell in enumerate(cells):
        cell["id"] = f"{stem}-{i}"  # stable ids: no diff churn
    notebook = new_notebook(cells=cells, metadata=METADATA)
    nbformat.validate(notebook)
    return nbformat.writes(notebook) + "\n"  # as nbformat.write ends a file


def build(out_dir: str) -> list[str]:
    """Writes every notebook into ``out_dir``; returns the paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for source in sources():
        path = os.path.join(out_dir, os.path.basename(source)[:-3] + ".ipynb")
        with open(path, "w") as handle:
            handle.write(notebook_text(source))
        paths.append(path)
    return paths


def stale() -> list[str]:
    """The committed notebooks that differ from their sources (or are missing)."""
    out = []
    for source in sources():
        path = source[:-3] + ".ipynb"
        committed = open(path).read() if os.path.exists(path) else None
        if committed != notebook_text(source):
            out.append(os.path.relpath(path, ROOT))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit status 1 if a notebook is not up to date")
    args = parser.parse_args(argv)
    if args.check:
        out_of_date = stale()
        for path in out_of_date:
            print(f"{path} is not up to date: run python tools/build_notebooks.py")
        return 1 if out_of_date else 0
    for path in build(COLAB):
        print("wrote", os.path.relpath(path, ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
