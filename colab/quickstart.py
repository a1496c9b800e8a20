# %% [markdown]
# # AutoML-Zero on JAX: quick start
#
# Evolve a learning algorithm from scratch: the reference's demo searches for a program
# (Setup / Predict / Learn over high-school math ops) that learns linear regression tasks.
# We run the search with a live progress line, plot best and mean fitness against
# individuals and time, print the best algorithm, simplify it, and evaluate it on tasks it
# has never seen.

# %% include="_setup.py"
from _setup import CI, az  # the set-up cells, in the notebook

# %% [markdown]
# ## The search spec
#
# The reference's `run_demo.sh` spec (`azero_jax/specs/demo_search.textproto`), unchanged
# except the population size and progress interval (text format, exactly as the C++ binary
# reads it).

# %%
import time

from azero_jax.spec import search_spec as spec_lib

DEMO_SPEC = """
"""  # text of azero_jax/specs/demo_search.textproto, filled in by tools/build_notebooks.py
spec = spec_lib.parse_search_experiment_spec(DEMO_SPEC)
spec = spec.replace(population_size=100 if CI else 1000, progress_every=500 if CI else 5000)
MEMORY = az.MemoryConfig(num_scalars=4, num_vectors=3, num_matrices=1)
TIME_LIMIT_SECS = 20 if CI else 900
print(f"population {spec.population_size}, time limit {TIME_LIMIT_SECS} s")

# %% [markdown]
# ## Run the search
#
# The line below updates in place while the search runs (individuals, time, best and mean
# fitness, FEC hit rate). This is the binary's experiments loop
# (`azero_jax.evolution.experiment.run_experiments`): like the reference, an experiment that does
# not find a perfect learner is followed by another with new seeds (many experiments get stuck
# in a local optimum), each candidate is checked on the T_select tasks, and the loop stops
# once one is good enough there. To save time here, an experiment also ends as soon as its
# search fitness passes 0.9999 (`stop_search_fitness`), and the whole run at the time limit.

# %%
import dataclasses

from azero_jax.analysis import plotting
from azero_jax.evolution import experiment

DEMO_SELECT = """
"""  # text of azero_jax/specs/demo_select.textproto, filled in by tools/build_notebooks.py
select_tasks = spec_lib.parse_task_collection(DEMO_SELECT, "select_tasks")
if CI:
    select_tasks = tuple(dataclasses.replace(t, num_tasks=10) for t in select_tasks)
config = experiment.ExperimentConfig(
    search=spec, select_tasks=select_tasks, final_tasks=(), memory=MEMORY, random_seed=1000,
    max_experiments=100, sufficient_fitness=0.9999, stop_search_fitness=0.9999)

runs = {}  # the progress records of each experiment (the binary's --metrics_log lines)
show = plotting.notebook_progress()


def on_progress(record):
    runs.setdefault(record["experiment"], []).append(record)
    show(record)


def log(line):
    if not line.startswith("indivs="):  # progress lines: shown in place above
        print(line)


deadline = time.time() + TIME_LIMIT_SECS
runner = experiment.ExperimentRunner(config, log=log, progress_fn=on_progress,
                                     should_stop=lambda: time.time() > deadline)
summary = runner.run()
print(f"{summary['num_experiments']} experiments done"
      + (", stopped at the time limit" if summary["interrupted"] else ""))

# %%
last = max(runs)
fig = plotting.plot_progress(runs[last], title="demo search: linear regression tasks "
                            f"(experiment {last})")

# %% [markdown]
# ## The best algorithm, raw and simplified
#
# Simplification removes every instruction that cannot affect a prediction (static
# analysis, paper S8a); the fitness is unchanged.

# %%
from azero_jax.analysis import simplify

best = runner.best_algorithm  # exactly (summary["best_algorithm"] is its 6-digit text)
print(best)
simplified = simplify.simplify(best)
print(simplify.size_report(best, simplified))
print(simplified)
with open("best_algorithm.txt", "w") as handle:  # analyze_algorithm.ipynb can load it
    handle.write(str(best))

# %% [markdown]
# ## Evaluate on fresh tasks
#
# New linear regression tasks (1000 training examples, unseen seeds), with the raw and the
# simplified algorithm and the hand-written linear model for comparison.

# %%
fresh = az.make_tasks(az.TaskSpec(
    "scalar_linear_regression_task", features_size=4, num_train_examples=1000,
    num_valid_examples=100, eval_type="rms_error", num_tasks=10 if CI else 100,
    data_seeds=(987654,), param_seeds=(123456,)))
contenders = {"evolved": best, "evolved, simplified": simplified,
              "hand-written linear model": az.generator.linear_model(0.01)}
grid = az.evaluate(list(contenders.values()), fresh, num_scalars=4, num_vectors=3,
                   num_matrices=1)
for name, row in zip(contenders, grid):
    print(f"{name:28s} mean fitness {row.mean():.6f}")

# %% [markdown]
# ## Use it without the interpreter
#
# Export the simplified algorithm as straight-line, jitted JAX functions and train it on a
# new task.

# %%
from azero_jax.analysis import export

model = export.export_for_task(simplified, fresh[0])
print(model.source.split('import jax.numpy as jnp')[1])
run = export.run_task(model, fresh[0])
print("exported fitness on a fresh task:", round(run.fitness, 6),
      "| interpreter:", round(float(grid[1, 0]), 6))
