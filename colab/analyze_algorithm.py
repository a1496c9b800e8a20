# %% [markdown]
# # Reading an evolved algorithm
#
# Load an algorithm (a text file in the reference's format, or a search checkpoint),
# simplify it, export it, knock out code sections to see which matter (paper S8c), knock a
# section into another algorithm (S8d), and plot learning curves. By default it studies
# the paper's Figure 6 algorithm on a synthetic binary classification task.

# %% include="_setup.py"
from _setup import CI, az  # the set-up cells, in the notebook

# %%
import numpy as np

from azero_jax import analysis

ALGORITHM_PATH = ""  # e.g. "best_algorithm.txt" or a checkpoint directory of the binary

FIGURE6 = """
"""  # text of azero_jax/algorithms/figure6.txt, filled in by tools/build_notebooks.py
algorithm = (analysis.load_algorithm(ALGORITHM_PATH) if ALGORITHM_PATH
             else az.parse_algorithm(FIGURE6))
print(algorithm)

# %% [markdown]
# ## A task
#
# Binary classification of 16-dimensional points labelled by a random quadratic rule
# (accuracy; the harness squashes `s1` with a sigmoid).

# %%
rng = np.random.default_rng(0)
F, N_TRAIN, N_VALID = 16, (400 if CI else 4000), (200 if CI else 1000)
x = rng.standard_normal((N_TRAIN + N_VALID, F))
quadratic = rng.standard_normal((F, F)) / F
y = (np.einsum("ni,ij,nj->n", x, quadratic, x) + x @ rng.standard_normal(F) > 0).astype(float)
task = az.Task.from_arrays(x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:],
                           eval_type="accuracy", num_epochs=1 if CI else 3)
memory = analysis.ablation.memory_for(algorithm)
fitness = az.evaluate(algorithm, task, num_scalars=memory.num_scalars,
                      num_vectors=memory.num_vectors, num_matrices=memory.num_matrices)
print(f"validation accuracy {fitness[0, 0]:.4f} (memory {memory})")

# %% [markdown]
# ## Simplify and export
#
# The exported functions are straight-line JAX (no interpreter) and run at any feature size.

# %%
simplified = analysis.simplify.simplify(algorithm)
print(analysis.simplify.size_report(algorithm, simplified))
model = analysis.export.export_for_task(simplified, task)
print(model.source.split("import jax.numpy as jnp")[1])
print("exported run, validation accuracy:", analysis.export.run_task(model, task).fitness)

# %% [markdown]
# ## Knock-outs (S8c)
#
# Every instruction removed in turn, then the paper's four code sections; fitness changes
# over seeds (random draws paired with the original's).

# %%
SEEDS = [0, 1] if CI else [0, 1, 2, 3, 4]
results = analysis.ablation.single_knockouts(simplified, [task], seeds=SEEDS)
print(analysis.ablation.format_comparisons(results))

# %%
SECTIONS = {  # (component, instruction indices) of the paper's Figure 6 code
    "noisy input": [("learn", [9])],  # v1 stays 0: no noise
    "weight averaging": [("predict", [4])],  # predict with the current, not averaged weights
}
if ALGORITHM_PATH:
    SECTIONS = {}  # name the sections of your own algorithm here
sections = analysis.ablation.ablate(algorithm, [task], SECTIONS, seeds=SEEDS)
for result in sections:
    print(result)

# %% [markdown]
# ## Knock-in (S8d)
#
# Insert a section into another algorithm: here the input noise goes back into the
# algorithm that lost it, which restores it exactly (`knock_in` also renames cells with
# `rename=`).

# %%
if not ALGORITHM_PATH:
    without_noise = analysis.ablation.knock_out(algorithm, "learn", [9], mode="remove")
    restored = analysis.ablation.knock_in(without_noise, algorithm.learn[9:10], "learn")
    print("restored == original:", restored == algorithm)
    for result in analysis.ablation.compare(without_noise, {"with noise knocked in": restored},
                                            [task], seeds=SEEDS):
        print(result)

# %% [markdown]
# ## Learning curves

# %%
variants = {"algorithm": simplified}
for result in sections:
    variants[f"without {result.label}"] = result.algorithm
curves = [(name, analysis.plotting.learning_curve(variant, task, every=100 if CI else 250))
          for name, variant in variants.items()]
fig = analysis.plotting.plot_learning_curve(curves, smooth=50)
