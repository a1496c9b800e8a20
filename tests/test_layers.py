"""The package's layers (README, "How the code is laid out"): a module imports, at module
level, only from its own layer or the layers above it. Lazy imports inside functions are
how a lower layer reaches a backend (``import azero_jax`` loads neither JAX nor numba)."""

import ast
import os
import subprocess
import sys

import azero_jax

LAYERS = (
    ("core", "ops program memory results tasks generator errors allocator"),
    ("population", "population"),
    ("backends", "evaluator backend cpu_evaluator _cpu_kernels _cpu_decode _cpu_specialize "
                 "_eigen_order liveness jax_evaluator jax_ops cuda_evaluator auto_backend "
                 "_gpu_figures"),
    ("search", "batch_mutator _search_kernels mutator randomizer fec hurdles train_budget "
               "search_evaluator "
               "evolution checkpoint experiment run_checks spec spec_protos protos"),
    ("islands", "islands"),
    ("paper and analysis", "baselines final_evaluation analysis datasets"),
)
LAYER_OF = {module: depth for depth, (_, modules) in enumerate(LAYERS)
            for module in modules.split()}
PACKAGE = os.path.dirname(azero_jax.__file__)


def _module_level_imports(path):
    """Top-level azero_jax modules a file imports outside functions."""
    for node in ast.parse(open(path).read()).body:
        if isinstance(node, ast.ImportFrom) and node.module and \
                node.module.split(".")[0] == "azero_jax":
            parts = node.module.split(".")
            yield from ([alias.name for alias in node.names] if len(parts) == 1 else [parts[1]])
        elif isinstance(node, ast.Import):
            yield from (alias.name.split(".")[1] for alias in node.names
                        if alias.name.startswith("azero_jax."))


def test_every_module_has_a_layer_and_imports_only_from_above():
    upward, unplaced = [], []
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py") or name == "__init__.py" and root == PACKAGE:
                continue
            path = os.path.join(root, name)
            top = os.path.relpath(path, PACKAGE).split(os.sep)[0].removesuffix(".py")
            if top not in LAYER_OF:
                unplaced.append(top)
                continue
            for imported in _module_level_imports(path):
                if imported not in LAYER_OF:
                    unplaced.append(imported)
                elif LAYER_OF[imported] > LAYER_OF[top]:
                    upward.append(f"{os.path.relpath(path, PACKAGE)} imports {imported}")
    assert not unplaced, f"modules missing from LAYERS (and the README's drawing): {unplaced}"
    assert not upward, upward


def test_importing_the_package_loads_no_backend():
    code = "import sys, azero_jax; print(sorted({'jax', 'numba', 'ray'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
