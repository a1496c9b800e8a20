"""The console scripts: declared in ``pyproject.toml``, each pointing at a function that
parses ``sys.argv`` and whose
help lists the binary's flags; the binaries' defaults are declared package data, so a wheel has them."""

import fnmatch
import os
import subprocess
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "pyproject.toml"), "rb") as _handle:
    PYPROJECT = tomllib.load(_handle)

# A flag each binary defines: its help must list it.
EXPECTED = {"azero-search": "--search_experiment_spec",
            "azero-final-evaluation": "--algorithm_file"}


def test_console_scripts_run_their_binaries():
    scripts = PYPROJECT["project"]["scripts"]
    assert set(scripts) == set(EXPECTED)
    for name, target in scripts.items():
        module, function = target.split(":")
        assert module.startswith("azero_jax.cli."), target
        # A process each: both binaries define --backend in absl's global flag registry.
        code = (f"import sys; from {module} import {function} as entry; "
                f"sys.argv = [{name!r}, '--helpshort']; entry()")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=dict(os.environ, JAX_PLATFORMS="cpu"), timeout=120)
        # absl's help exits with status 1; a broken import would leave a traceback.
        assert "Traceback" not in done.stderr, (name, done.stderr[-2000:])
        assert EXPECTED[name] in done.stdout, (name, done.stdout[-2000:])


def test_the_binaries_defaults_are_package_data():
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["azero_jax"]
    package = os.path.join(ROOT, "azero_jax")
    data = [f"{folder}/{name}" for folder in ("specs", "algorithms")
            for name in sorted(os.listdir(os.path.join(package, folder)))]
    assert "specs/demo_search.textproto" in data and "algorithms/figure6.txt" in data
    unshipped = [path for path in data
                 if not any(fnmatch.fnmatch(path, pattern) for pattern in patterns)]
    assert not unshipped, f"not declared as package data, missing from a wheel: {unshipped}"
