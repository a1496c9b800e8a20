# %% [markdown]
# # Rediscovering backpropagation (paper Figure 5)
#
# Tasks are regression problems labelled by random *teacher* neural networks (`u . relu(M
# x)`, 8 features). The search may only use the ops of a two-layer network trained by
# gradient descent (paper supplement S5): Setup {56, 63, 64}, Predict {27, 31, 48}, Learn
# {2, 3, 16, 18, 23, 25, 28, 40}; 4/8/2 scalar/vector/matrix addresses; fixed sizes
# 21/3/9. With many tasks the weights cannot be hard-coded, so evolution must discover a
# forward pass *and* a learning rule.
#
# The paper's run used far more compute than a notebook has. On a Colab GPU the budget
# below (minutes) typically finds the forward pass and a partial learning rule; raise
# `TIME_LIMIT_SECS` and `NUM_TASKS` to go further. The CPU budget is smaller still.

# %% include="_setup.py"
from _setup import BACKEND, CI, az  # the set-up cells, in the notebook

# %%
import time

from azero_jax.spec import search_spec as spec_lib

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
print(f"{NUM_TASKS} teacher tasks, population {POPULATION}, time limit {TIME_LIMIT_SECS} s")

# %%
from azero_jax.analysis import plotting
from azero_jax.evolution.regularized_evolution import Search

records = []
show = plotting.notebook_progress()


def on_progress(record):
    records.append(record)
    show(record)


search = Search(spec, memory=MEMORY, seed=5, progress_fn=on_progress)
deadline = time.time() + TIME_LIMIT_SECS
candidate = search.run(should_stop=lambda: time.time() > deadline)
search.maybe_report(force=True)
fig = plotting.plot_progress(records, title="teacher-network regression (Figure 5 setting)")

# %% [markdown]
# ## What did evolution find?
#
# The raw best algorithm, then the same after static simplification (compare with the
# paper's Figure 5).

# %%
from azero_jax.analysis import simplify

best = candidate.algorithm
print(f"search fitness {candidate.fitness:.4f}")
simplified = simplify.simplify(best)  # random ops kept: removed code becomes NoOp()
print(simplify.size_report(best, simplified))
print(simplify.strip_noops(simplified))  # for reading only (positions change)

# %% [markdown]
# ## Against the hand-written network
#
# Fresh teacher tasks; the hand-coded two-layer net trained by backpropagation (the
# reference's `NEURAL_NET_ALGORITHM`) is the yardstick.

# %%
fresh = az.make_tasks(az.TaskSpec(
    "scalar_2layer_nn_regression_task", features_size=8, num_train_examples=1000,
    num_valid_examples=100, eval_type="rms_error", num_tasks=3 if CI else 20,
    data_seeds=(5551,), param_seeds=(7771,)))
hand = az.generator.neural_net(0.01, 0.1, 0.1)
grid = az.evaluate([simplified, hand], fresh, num_scalars=5, num_vectors=9, num_matrices=2)
print(f"evolved (simplified): {grid[0].mean():.4f}   hand-written NN: {grid[1].mean():.4f}")

curves = [("evolved", plotting.learning_curve(simplified, fresh[0], every=50)),
          ("hand-written NN", plotting.learning_curve(hand, fresh[0], every=50))]
fig = plotting.plot_learning_curve(curves, title="learning curves on a fresh teacher task")
