"""Writes the Colab notebooks in ``colab/`` from the cell sources below.

The notebooks are generated so that their cells stay short, reviewed Python (every bit of
logic lives in the package; cells only configure and call it). Edit the cells here and
run ``python tools/build_notebooks.py``; ``tools/run_notebooks.py`` executes them.
"""

from __future__ import annotations

import os
import sys

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

INSTALL = '''# Install azero_jax from its repository when it is not importable yet (e.g. on Colab).
REPO_URL = "https://github.com/OWNER/azero_jax"  # the repository to install from

import importlib.util
import subprocess
import sys

if importlib.util.find_spec("azero_jax") is None:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q",
                           f"azero_jax[plot] @ git+{REPO_URL}"])
else:
    print("azero_jax is already installed")'''

GPU_CHECK = '''# Which machine runs the evaluations? (Colab: Runtime > Change runtime type > GPU.)
import os

import jax

import azero_jax as az

CI = os.environ.get("AZERO_CI") == "1"  # tiny budgets when CI executes the notebook
BACKEND = az.evaluator.default_backend()
print("JAX devices:", jax.devices())
print("evaluator backend:", BACKEND,
      "(batched, jitted JAX on the accelerator)" if BACKEND == "jax"
      else "(compiled per-core interpreter on the CPU; no GPU found)")
print("CI budgets" if CI else "full budgets")'''

# ------------------------------------------------------------------------------------
QUICKSTART = [
    new_markdown_cell(
        "# AutoML-Zero on JAX: quick start\n\n"
        "Evolve a learning algorithm from scratch: the reference's demo searches for a "
        "program (Setup / Predict / Learn over high-school math ops) that learns linear "
        "regression tasks. We run the search with a live progress line, plot best and mean "
        "fitness against individuals and time, print the best algorithm, simplify it, and "
        "evaluate it on tasks it has never seen."),
    new_code_cell(INSTALL),
    new_code_cell(GPU_CHECK),
    new_markdown_cell(
        "## The search spec\n\nThe reference's `run_demo.sh` spec, unchanged except the "
        "population size and progress interval (text format, exactly as the C++ binary "
        "reads it)."),
    new_code_cell('''import time

from azero_jax import spec as spec_lib

DEMO_SPEC = """
search_tasks {
  tasks {
    scalar_linear_regression_task {}
    features_size: 4
    num_train_examples: 100
    num_valid_examples: 100
    num_tasks: 10
    eval_type: RMS_ERROR
  }
}
setup_ops: [SCALAR_CONST_SET_OP, VECTOR_INNER_PRODUCT_OP, SCALAR_DIFF_OP, SCALAR_PRODUCT_OP, SCALAR_VECTOR_PRODUCT_OP, VECTOR_SUM_OP]
predict_ops: [SCALAR_CONST_SET_OP, VECTOR_INNER_PRODUCT_OP, SCALAR_DIFF_OP, SCALAR_PRODUCT_OP, SCALAR_VECTOR_PRODUCT_OP, VECTOR_SUM_OP]
learn_ops: [SCALAR_CONST_SET_OP, VECTOR_INNER_PRODUCT_OP, SCALAR_DIFF_OP, SCALAR_PRODUCT_OP, SCALAR_VECTOR_PRODUCT_OP, VECTOR_SUM_OP]
learn_size_init: 8
setup_size_init: 10
predict_size_init: 2
fec {num_train_examples: 10 num_valid_examples: 10}
fitness_combination_mode: MEAN_FITNESS_COMBINATION
population_size: 1000
tournament_size: 10
initial_population: RANDOM_ALGORITHM
max_train_steps: 200000000
allowed_mutation_types {
  mutation_types: [ALTER_PARAM_MUTATION_TYPE, RANDOMIZE_INSTRUCTION_MUTATION_TYPE, RANDOMIZE_COMPONENT_FUNCTION_MUTATION_TYPE]
}
mutate_prob: 0.9
progress_every: 10000
"""
spec = spec_lib.parse_search_experiment_spec(DEMO_SPEC)
spec = spec.replace(population_size=100 if CI else 1000, progress_every=500 if CI else 5000)
MEMORY = az.MemoryConfig(num_scalars=4, num_vectors=3, num_matrices=1)
TIME_LIMIT_SECS = 20 if CI else 900
print(f"population {spec.population_size}, time limit {TIME_LIMIT_SECS} s")'''),
    new_markdown_cell("## Run the search\n\nThe line below updates in place while the "
                      "search runs (individuals, time, best and mean fitness, FEC hit rate). "
                      "Like the reference binary, an experiment that uses up its training-"
                      "step budget without finding a perfect learner is restarted with a "
                      "new seed (many experiments get stuck in a local optimum)."),
    new_code_cell('''from azero_jax.analysis import plotting
from azero_jax.evolution import Search

runs = []  # one metrics log per experiment (the binary writes the same records as JSON lines)
show = plotting.notebook_progress()


def on_progress(record):
    runs[-1].append(record)
    show(record)


deadline = time.time() + TIME_LIMIT_SECS
candidate = None
for experiment in range(100):
    runs.append([])
    search = Search(spec, memory=MEMORY, seed=1000 + experiment, progress_fn=on_progress)
    result = search.run(should_stop=lambda: time.time() > deadline
                        or search.candidate().fitness > 0.9999)
    search.maybe_report(force=True)
    print(f"experiment {experiment}: search fitness {result.fitness:.6f} after "
          f"{result.num_individuals} individuals in {result.elapsed_secs:.0f} s")
    if candidate is None or result.fitness > candidate.fitness:
        candidate = result
    if result.fitness > 0.9999 or time.time() > deadline:
        break'''),
    new_code_cell('''fig = plotting.plot_progress(runs[-1], title="demo search: linear regression tasks "
                            f"(experiment {len(runs) - 1})")'''),
    new_markdown_cell("## The best algorithm, raw and simplified\n\nSimplification removes "
                      "every instruction that cannot affect a prediction (static analysis, "
                      "paper S8a); the fitness is unchanged."),
    new_code_cell('''from azero_jax.analysis import simplify

best = candidate.algorithm
print(best)
simplified = simplify.simplify(best)
print(simplify.size_report(best, simplified))
print(simplified)
with open("best_algorithm.txt", "w") as handle:  # analyze_algorithm.ipynb can load it
    handle.write(str(best))'''),
    new_markdown_cell("## Evaluate on fresh tasks\n\nNew linear regression tasks "
                      "(1000 training examples, unseen seeds), with the raw and the "
                      "simplified algorithm and the hand-written linear model for comparison."),
    new_code_cell('''fresh = az.make_tasks(az.TaskSpec(
    "scalar_linear_regression_task", features_size=4, num_train_examples=1000,
    num_valid_examples=100, eval_type="rms_error", num_tasks=10 if CI else 100,
    data_seeds=(987654,), param_seeds=(123456,)))
contenders = {"evolved": best, "evolved, simplified": simplified,
              "hand-written linear model": az.generator.linear_model(0.01)}
grid = az.evaluate(list(contenders.values()), fresh, num_scalars=4, num_vectors=3,
                   num_matrices=1)
for name, row in zip(contenders, grid):
    print(f"{name:28s} mean fitness {row.mean():.6f}")'''),
    new_markdown_cell("## Use it without the interpreter\n\nExport the simplified algorithm "
                      "as straight-line, jitted JAX functions and train it on a new task."),
    new_code_cell('''from azero_jax.analysis import export

model = export.export_for_task(simplified, fresh[0])
print(model.source.split('import jax.numpy as jnp')[1])
run = export.run_task(model, fresh[0])
print("exported fitness on a fresh task:", round(run.fitness, 6),
      "| interpreter:", round(float(grid[1, 0]), 6))'''),
]

# ------------------------------------------------------------------------------------
BACKPROP = [
    new_markdown_cell(
        "# Rediscovering backpropagation (paper Figure 5)\n\n"
        "Tasks are regression problems labelled by random *teacher* neural networks "
        "(`u . relu(M x)`, 8 features). The search may only use the ops of a two-layer "
        "network trained by gradient descent (paper supplement S5): Setup {56, 63, 64}, "
        "Predict {27, 31, 48}, Learn {2, 3, 16, 18, 23, 25, 28, 40}; 4/8/2 scalar/vector/"
        "matrix addresses; fixed sizes 21/3/9. With many tasks the weights cannot be "
        "hard-coded, so evolution must discover a forward pass *and* a learning rule.\n\n"
        "The paper's run used far more compute than a notebook has. On a Colab GPU the "
        "budget below (minutes) typically finds the forward pass and a partial learning "
        "rule; raise `TIME_LIMIT_SECS` and `NUM_TASKS` to go further. The CPU budget is "
        "smaller still."),
    new_code_cell(INSTALL),
    new_code_cell(GPU_CHECK),
    new_code_cell('''import time

from azero_jax import spec as spec_lib

ON_GPU = BACKEND == "jax"
NUM_TASKS = 2 if CI else (10 if ON_GPU else 4)
NUM_TRAIN = 100 if CI else 1000
POPULATION = 100 if CI else (1000 if ON_GPU else 300)
TIME_LIMIT_SECS = 25 if CI else (300 if ON_GPU else 180)

FIGURE5_SPEC = f"""
search_tasks {{
  tasks {{
    scalar_2layer_nn_regression_task {{}}
    features_size: 8
    num_train_examples: {NUM_TRAIN}
    num_valid_examples: 100
    num_tasks: {NUM_TASKS}
    eval_type: RMS_ERROR
  }}
}}
setup_ops: [SCALAR_CONST_SET_OP, VECTOR_GAUSSIAN_SET_OP, MATRIX_GAUSSIAN_SET_OP]
predict_ops: [VECTOR_INNER_PRODUCT_OP, MATRIX_VECTOR_PRODUCT_OP, VECTOR_MAX_OP]
learn_ops: [SCALAR_DIFF_OP, SCALAR_PRODUCT_OP, VECTOR_HEAVYSIDE_OP, SCALAR_VECTOR_PRODUCT_OP, VECTOR_SUM_OP, VECTOR_PRODUCT_OP, VECTOR_OUTER_PRODUCT_OP, MATRIX_SUM_OP]
setup_size_init: 21
predict_size_init: 3
learn_size_init: 9
fec {{num_train_examples: 10 num_valid_examples: 10}}
fitness_combination_mode: MEAN_FITNESS_COMBINATION
population_size: {POPULATION}
tournament_size: 10
initial_population: RANDOM_ALGORITHM
max_train_steps: 100000000000
allowed_mutation_types {{
  mutation_types: [ALTER_PARAM_MUTATION_TYPE, RANDOMIZE_INSTRUCTION_MUTATION_TYPE, RANDOMIZE_COMPONENT_FUNCTION_MUTATION_TYPE]
}}
mutate_prob: 0.9
progress_every: {POPULATION * 5}
"""
spec = spec_lib.parse_search_experiment_spec(FIGURE5_SPEC)
MEMORY = az.MemoryConfig(num_scalars=4, num_vectors=8, num_matrices=2)
print(f"{NUM_TASKS} teacher tasks, population {POPULATION}, time limit {TIME_LIMIT_SECS} s")'''),
    new_code_cell('''from azero_jax.analysis import plotting
from azero_jax.evolution import Search

records = []
show = plotting.notebook_progress()


def on_progress(record):
    records.append(record)
    show(record)


search = Search(spec, memory=MEMORY, seed=5, progress_fn=on_progress)
deadline = time.time() + TIME_LIMIT_SECS
candidate = search.run(should_stop=lambda: time.time() > deadline)
search.maybe_report(force=True)
fig = plotting.plot_progress(records, title="teacher-network regression (Figure 5 setting)")'''),
    new_markdown_cell("## What did evolution find?\n\nThe raw best algorithm, then the same "
                      "after static simplification (compare with the paper's Figure 5)."),
    new_code_cell('''from azero_jax.analysis import simplify

best = candidate.algorithm
print(f"search fitness {candidate.fitness:.4f}")
simplified = simplify.simplify(best)  # random ops kept: removed code becomes NoOp()
print(simplify.size_report(best, simplified))
print(simplify.strip_noops(simplified))  # for reading only (positions change)'''),
    new_markdown_cell("## Against the hand-written network\n\nFresh teacher tasks; the "
                      "hand-coded two-layer net trained by backpropagation (the reference's "
                      "`NEURAL_NET_ALGORITHM`) is the yardstick."),
    new_code_cell('''fresh = az.make_tasks(az.TaskSpec(
    "scalar_2layer_nn_regression_task", features_size=8, num_train_examples=1000,
    num_valid_examples=100, eval_type="rms_error", num_tasks=3 if CI else 20,
    data_seeds=(5551,), param_seeds=(7771,)))
hand = az.generator.neural_net(0.01, 0.1, 0.1)
grid = az.evaluate([simplified, hand], fresh, num_scalars=5, num_vectors=9, num_matrices=2)
print(f"evolved (simplified): {grid[0].mean():.4f}   hand-written NN: {grid[1].mean():.4f}")

curves = [("evolved", plotting.learning_curve(simplified, fresh[0], every=50)),
          ("hand-written NN", plotting.learning_curve(hand, fresh[0], every=50))]
fig = plotting.plot_learning_curve(curves, title="learning curves on a fresh teacher task")'''),
]

# ------------------------------------------------------------------------------------
ANALYZE = [
    new_markdown_cell(
        "# Reading an evolved algorithm\n\n"
        "Load an algorithm (a text file in the reference's format, or a search "
        "checkpoint), simplify it, export it, knock out code sections to see which matter "
        "(paper S8c), knock a section into another algorithm (S8d), and plot learning "
        "curves. By default it studies the paper's Figure 6 algorithm on a synthetic "
        "binary classification task."),
    new_code_cell(INSTALL),
    new_code_cell(GPU_CHECK),
    new_code_cell('''import numpy as np

from azero_jax import analysis

ALGORITHM_PATH = ""  # e.g. "best_algorithm.txt" or a checkpoint directory of the binary

FIGURE6 = """
def Setup():
  s4 = 0.0018
def Predict():
  v2 = v0 + v1
  v3 = v0 - v1
  v4 = dot(m0, v2)
  s1 = dot(v3, v4)
  m0 = s2 * m2
def Learn():
  s3 = s0 - s1
  m0 = outer(v3, v0)
  s2 = norm(m0)
  s5 = s3 / s2
  v5 = s5 * v3
  m0 = outer(v5, v2)
  m1 = m1 + m0
  m2 = m2 + m1
  m0 = s4 * m1
  v1 = uniform(0.0024, 0.67, n_features)
"""
algorithm = (analysis.load_algorithm(ALGORITHM_PATH) if ALGORITHM_PATH
             else az.parse_algorithm(FIGURE6))
print(algorithm)'''),
    new_markdown_cell("## A task\n\nBinary classification of 16-dimensional points labelled "
                      "by a random quadratic rule (accuracy; the harness squashes `s1` "
                      "with a sigmoid)."),
    new_code_cell('''rng = np.random.default_rng(0)
F, N_TRAIN, N_VALID = 16, (400 if CI else 4000), (200 if CI else 1000)
x = rng.standard_normal((N_TRAIN + N_VALID, F))
quadratic = rng.standard_normal((F, F)) / F
y = (np.einsum("ni,ij,nj->n", x, quadratic, x) + x @ rng.standard_normal(F) > 0).astype(float)
task = az.Task.from_arrays(x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:],
                           eval_type="accuracy", num_epochs=1 if CI else 3)
memory = analysis.ablation.memory_for(algorithm)
fitness = az.evaluate(algorithm, task, num_scalars=memory.num_scalars,
                      num_vectors=memory.num_vectors, num_matrices=memory.num_matrices)
print(f"validation accuracy {fitness[0, 0]:.4f} (memory {memory})")'''),
    new_markdown_cell("## Simplify and export\n\nThe exported functions are straight-line "
                      "JAX (no interpreter) and run at any feature size."),
    new_code_cell('''simplified = analysis.simplify.simplify(algorithm)
print(analysis.simplify.size_report(algorithm, simplified))
model = analysis.export.export_for_task(simplified, task)
print(model.source.split("import jax.numpy as jnp")[1])
print("exported run, validation accuracy:", analysis.export.run_task(model, task).fitness)'''),
    new_markdown_cell("## Knock-outs (S8c)\n\nEvery instruction removed in turn, then the "
                      "paper's four code sections; fitness changes over seeds (random "
                      "draws paired with the original's)."),
    new_code_cell('''SEEDS = [0, 1] if CI else [0, 1, 2, 3, 4]
results = analysis.ablation.single_knockouts(simplified, [task], seeds=SEEDS)
print(analysis.ablation.format_comparisons(results))'''),
    new_code_cell('''SECTIONS = {  # (component, instruction indices) of the paper's Figure 6 code
    "noisy input": [("learn", [9])],  # v1 stays 0: no noise
    "weight averaging": [("predict", [4])],  # predict with the current, not averaged weights
}
if ALGORITHM_PATH:
    SECTIONS = {}  # name the sections of your own algorithm here
sections = analysis.ablation.ablate(algorithm, [task], SECTIONS, seeds=SEEDS)
for result in sections:
    print(result)'''),
    new_markdown_cell("## Knock-in (S8d)\n\nInsert a section into another algorithm: here "
                      "the input noise goes back into the algorithm that lost it, which "
                      "restores it exactly (`knock_in` also renames cells with `rename=`)."),
    new_code_cell('''if not ALGORITHM_PATH:
    without_noise = analysis.ablation.knock_out(algorithm, "learn", [9], mode="remove")
    restored = analysis.ablation.knock_in(without_noise, algorithm.learn[9:10], "learn")
    print("restored == original:", restored == algorithm)
    for result in analysis.ablation.compare(without_noise, {"with noise knocked in": restored},
                                            [task], seeds=SEEDS):
        print(result)'''),
    new_markdown_cell("## Learning curves"),
    new_code_cell('''variants = {"algorithm": simplified}
for result in sections:
    variants[f"without {result.label}"] = result.algorithm
curves = [(name, analysis.plotting.learning_curve(variant, task, every=100 if CI else 250))
          for name, variant in variants.items()]
fig = analysis.plotting.plot_learning_curve(curves, smooth=50)'''),
]

NOTEBOOKS = {
    "quickstart.ipynb": QUICKSTART,
    "rediscover_backprop.ipynb": BACKPROP,
    "analyze_algorithm.ipynb": ANALYZE,
}


def build(out_dir: str) -> list[str]:
    """Writes every notebook into ``out_dir``; returns the paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for name, cells in NOTEBOOKS.items():
        for i, cell in enumerate(cells):
            cell["id"] = f"{os.path.splitext(name)[0]}-{i}"  # stable ids: no diff churn
        notebook = new_notebook(cells=cells, metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "accelerator": "GPU",
            "colab": {"provenance": []},
        })
        nbformat.validate(notebook)
        path = os.path.join(out_dir, name)
        with open(path, "w") as handle:
            nbformat.write(notebook, handle)
        paths.append(path)
    return paths


def main() -> int:
    for path in build(os.path.join(ROOT, "colab")):
        print("wrote", os.path.relpath(path, ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
