# %% [markdown]
# ## Set-up
#
# The next cell installs `azero_jax` where it is not importable yet, as on a fresh Colab
# machine; where it is installed (a local Jupyter, CI) it does nothing.
#
# * **Opened in Colab from GitHub** (a link of the form
#   `https://colab.research.google.com/github/OWNER/REPO/blob/BRANCH/colab/NOTEBOOK.ipynb`):
#   it installs that repository at that branch (`pip install "azero_jax @ git+..."`).
# * **Opened any other way** (uploaded, from Google Drive): it asks you to upload a wheel.
#   Build one in a checkout of the repository with
#   `python -m pip wheel . --no-deps -w dist` and upload `dist/azero_jax-*.whl`; a source
#   archive of the repository (`.tar.gz`, or GitHub's "Download ZIP") works too.
# * Or set `REPO` to a repository address with its branch, e.g.
#   `"https://github.com/OWNER/REPO@main"`, to install from there.
#
# Then pick a GPU (Runtime > Change runtime type) before running the search cells.

# %%
REPO = ""  # e.g. "https://github.com/OWNER/REPO@main"; empty: as the text above says

import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request

if importlib.util.find_spec("azero_jax") is not None:
    print("azero_jax is already installed")
else:
    if not REPO:  # Colab's Jupyter server knows the address the notebook was opened from
        try:
            server = f"http://{os.environ.get('COLAB_JUPYTER_IP', '172.28.0.12')}:9000"
            with urllib.request.urlopen(server + "/api/sessions", timeout=10) as reply:
                opened = urllib.parse.unquote(json.load(reply)[0]["path"])
            found = re.search(r"github(?:\.com)?/([^/]+)/([^/]+)/blob/([^/]+)/", opened)
            REPO = f"https://github.com/{found[1]}/{found[2]}@{found[3]}" if found else ""
        except (OSError, ValueError, LookupError):
            pass  # not Colab, or not opened from GitHub: ask for a file below
    if REPO:
        target = f"azero_jax[plot] @ git+{REPO}"
    else:
        from google.colab import files  # outside Colab: pip install azero_jax, then rerun

        print("Upload azero_jax-*.whl (or a source archive), built as the text above says")
        target = os.path.abspath(next(iter(files.upload())))
    print("installing", target)
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", target])
    importlib.invalidate_caches()

# %%
# Which machine runs the evaluations? (Colab: Runtime > Change runtime type > GPU.)
import os

import jax

import azero_jax as az
from azero_jax.backends import evaluator

CI = os.environ.get("AZERO_CI") == "1"  # tiny budgets when CI executes the notebook
BACKEND = evaluator.default_backend()
print("azero_jax", az.__version__, "· JAX devices:", jax.devices())
print("evaluator backend:", BACKEND,
      "(batched, jitted JAX on the accelerator)" if BACKEND == "jax"
      else "(compiled per-core interpreter on the CPU; no GPU found)")
print("CI budgets" if CI else "full budgets")
