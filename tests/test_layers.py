"""The package's layers (README, "How the code is laid out"): each folder of ``azero_jax/``
is a layer or part of one, and a module imports, at module level, only from its own
layer or the layers above it. Lazy imports inside functions are how a lower layer
reaches a backend (``import azero_jax`` loads neither JAX nor numba)."""

import ast
import os
import re
import subprocess
import sys

import azero_jax

# Top to bottom. ``evolution`` and ``spec`` share a layer: the spec parses into the
# search's config types, which take their defaults from the spec's messages. ``cli`` (the
# console scripts) is the bottom: nothing in the package imports it.
LAYERS = (
    ("core", "core"),
    ("backends", "backends"),
    ("search", "evolution spec"),
    ("islands", "islands"),
    ("analysis and datasets", "analysis datasets"),
    ("paper", "paper"),
    ("binaries", "cli"),
)
LAYER_OF = {package: depth for depth, (_, packages) in enumerate(LAYERS)
            for package in packages.split()}
PACKAGE = os.path.dirname(azero_jax.__file__)
README = os.path.join(os.path.dirname(PACKAGE), "README.md")


def _modules():
    """``(path relative to the package, its folder under azero_jax/ or None)`` per module."""
    for root, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.relpath(os.path.join(root, name), PACKAGE)
                parts = path.split(os.sep)
                yield path, (parts[0] if len(parts) > 1 else None)


def _module_level_imports(path):
    """The folders under azero_jax/ whose modules a file imports outside functions."""
    for node in ast.parse(open(path).read()).body:
        if isinstance(node, ast.ImportFrom) and node.module and \
                node.module.split(".")[0] == "azero_jax":
            parts = node.module.split(".")
            yield from ([alias.name for alias in node.names] if len(parts) == 1 else [parts[1]])
        elif isinstance(node, ast.Import):
            yield from (alias.name.split(".")[1] for alias in node.names
                        if alias.name.startswith("azero_jax."))


def test_every_module_sits_in_a_layer_and_imports_only_from_above():
    upward, unplaced = [], []
    for path, folder in _modules():
        if folder is None:
            if path != "__init__.py":
                unplaced.append(path)  # a module directly under azero_jax/ shows no layer
            continue
        if folder not in LAYER_OF:
            unplaced.append(path)
            continue
        for imported in _module_level_imports(os.path.join(PACKAGE, path)):
            if imported not in LAYER_OF:
                unplaced.append(f"{imported} (imported by {path})")
            elif LAYER_OF[imported] > LAYER_OF[folder]:
                upward.append(f"{path} imports {imported}")
    assert not unplaced, f"outside the folders of LAYERS (and the README's drawing): {unplaced}"
    assert not upward, upward


def test_the_readme_draws_every_folder_and_module():
    text = open(README, encoding="utf-8").read()
    section = text.split("## How the code is laid out", 1)[1].split("\n## ", 1)[0]
    drawing = section.split("```", 2)[1]
    words = set(re.findall(r"[\w]+", drawing))
    folders = {os.path.basename(os.path.dirname(path)) + "/" for path, folder in _modules()
               if folder}
    missing = sorted({folder for folder in folders if folder not in drawing}
                     | {path for path, folder in _modules()
                        if folder and not path.endswith("__init__.py")
                        and os.path.basename(path)[:-3] not in words})
    assert not missing, f"missing from the README's drawing: {missing}"


def test_importing_the_package_loads_no_backend():
    code = "import sys, azero_jax; print(sorted({'jax', 'numba', 'ray'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
