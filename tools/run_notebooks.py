"""Executes every notebook in ``colab/`` top to bottom; any cell error fails the run.

CI runs it after the unit tests (needs the ``notebooks`` extra and a ``python3`` Jupyter
kernel: ``pip install -e .[notebooks] && python -m ipykernel install --user``)::

    python tools/run_notebooks.py            # CI budgets (AZERO_CI=1), all notebooks
    python tools/run_notebooks.py --full quickstart.ipynb --output_dir /tmp/executed

Each notebook runs in a fresh temporary working directory with ``AZERO_CI=1`` (unless
``--full``), so files it writes do not land in the repository.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_notebook(path: str, full: bool = False, timeout: int = 900,
                 output_dir: str | None = None, kernel: str = "python3") -> float:
    """Executes one notebook; returns the seconds it took. Raises on a failing cell."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    old = os.environ.get("AZERO_CI")
    os.environ["AZERO_CI"] = "0" if full else "1"
    start = time.time()
    try:
        with tempfile.TemporaryDirectory(prefix="azero_nb_") as workdir:
            client = NotebookClient(notebook, timeout=timeout, kernel_name=kernel,
                                    resources={"metadata": {"path": workdir}})
            try:
                client.execute()
            finally:
                if output_dir:
                    os.makedirs(output_dir, exist_ok=True)
                    nbformat.write(notebook, os.path.join(output_dir, os.path.basename(path)))
    finally:
        if old is None:
            os.environ.pop("AZERO_CI", None)
        else:
            os.environ["AZERO_CI"] = old
    return time.time() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*",
                        help="notebook names or paths (default: every colab/*.ipynb)")
    parser.add_argument("--full", action="store_true",
                        help="run with the full budgets (AZERO_CI unset to 0)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    parser.add_argument("--output_dir", help="also write the executed notebooks here")
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel name")
    args = parser.parse_args(argv)
    paths = []
    for name in args.notebooks or sorted(glob.glob(os.path.join(ROOT, "colab", "*.ipynb"))):
        path = name if os.path.exists(name) else os.path.join(ROOT, "colab", name)
        if not os.path.exists(path):
            parser.error(f"no such notebook: {name}")
        paths.append(path)
    if not paths:
        parser.error("no notebooks found in colab/")
    failures = 0
    for path in paths:
        name = os.path.relpath(path, ROOT)
        try:
            secs = run_notebook(path, args.full, args.timeout, args.output_dir, args.kernel)
        except Exception as error:  # nbclient raises CellExecutionError with the traceback
            failures += 1
            print(f"FAIL {name}\n{error}", flush=True)
        else:
            print(f"ok   {name} ({secs:.0f} s)", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
