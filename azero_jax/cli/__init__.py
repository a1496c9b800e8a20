"""The console entry points (``[project.scripts]`` in ``pyproject.toml``): thin absl binaries.

* :mod:`~azero_jax.cli.run_search_experiment` (``azero-search``): the reference's
  ``run_search_experiment``; with no flags, the run_demo.sh spec.
* :mod:`~azero_jax.cli.final_evaluation` (``azero-final-evaluation``): the paper's final
  evaluation (S7) of an algorithm file against tuned baselines.

The bottom layer: nothing in the package imports it. The demo specs (``specs/``) and the
Figure 6 algorithm (``algorithms/``) ship inside the package as data, so the defaults are
found from a wheel as well as from a checkout.
"""

from __future__ import annotations

import sys
from importlib import resources

from azero_jax.core.errors import run_main


def bundled(*parts: str) -> str:
    """The path of a data file shipped in the package, e.g. ``bundled("specs", name)``.

    Example:
        >>> import os
        >>> os.path.isfile(bundled("specs", "demo_search.textproto"))
        True
    """
    return str(resources.files("azero_jax").joinpath(*parts))


def run_binary(main, module_name: str) -> None:
    """Runs an absl ``main`` as a binary (:func:`~azero_jax.core.errors.run_main`), its
    ``--help`` listing the binary's flags however it was started.

    absl's help lists the flags of the module named by ``sys.argv[0]``: the binary itself
    when run as a file or with ``python -m``, but a console script's ``sys.argv[0]`` is the
    wrapper pip writes on the PATH. So ``module_name``'s flags are listed under that name too.
    """
    from absl import flags

    for flag in flags.FLAGS.get_key_flags_for_module(module_name):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    run_main(main)
