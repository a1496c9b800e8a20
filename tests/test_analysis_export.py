"""Export: straight-line jitted JAX functions reproduce the interpreters (no random ops)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import azero_jax as az
from azero_jax import parse_algorithm
from azero_jax.analysis import export as ex
from azero_jax.analysis import simplify as simp
from azero_jax.core import generator
from analysis_helpers import MEMORY, insert_random, random_algorithm

import oracle

DETERMINISTIC_OPS = tuple(c for c in range(56 + 3) if c != 0)  # every op but the random ones

# The paper's Figure 6 algorithm (Predict writes memory: m0 = s2 * m2), with the noise
# made deterministic so that interpreters and export must agree exactly.
FIGURE6 = parse_algorithm("""
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
  v1[0.3] = 0.01
""")
FIG6_MEMORY = dict(num_scalars=6, num_vectors=6, num_matrices=3)


def _binary_task(F=4, n_train=60, n_valid=30, seed=0, epochs=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_train + n_valid, F))
    y = (x @ rng.standard_normal(F) > 0).astype(float)
    return az.Task(x[:n_train], y[:n_train], x[n_train:], y[n_train:], eval_type="accuracy",
                   num_epochs=epochs, data_seed=seed)


def _cpu_fitness(algorithm, task, memory):
    return float(az.evaluate(algorithm, task, **memory, backend="cpu")[0, 0])


def test_source_is_straight_line_and_standalone():
    source = ex.export_source(FIGURE6, "accuracy")
    # Imports anywhere (the helpers' source included): JAX only.
    imports = [line.strip() for line in source.splitlines()
               if line.strip().startswith(("import ", "from "))]
    assert imports == ["import jax", "import jax.numpy as jnp"]
    assert "switch" not in source
    functions = ex.load_source(source)
    state = functions["init"](jax.random.key(0), 5)
    assert sorted(state) == ["m0", "m1", "m2", "s1", "s2", "s3", "s4", "s5",
                             "v1", "v2", "v3", "v4", "v5"]
    assert state["m0"].shape == (5, 5) and float(state["s4"]) == pytest.approx(0.0018)
    # v1[0.3] on F=5 writes entry int(5 * 0.3) = 1 (float32 arithmetic).
    new = functions["learn"](state, np.ones(5, np.float32), 1.0, jax.random.key(1))
    assert np.asarray(new["v1"]).tolist() == pytest.approx([0, 0.01, 0, 0, 0])


@pytest.mark.parametrize("F", [3, 16])
def test_figure6_matches_cpu_interpreter_at_any_feature_size(F):
    task = _binary_task(F=F, n_train=80, n_valid=40, seed=F, epochs=2)
    run = ex.run_task(FIGURE6, task, dtype="float64")
    assert run.fitness == pytest.approx(_cpu_fitness(FIGURE6, task, FIG6_MEMORY), abs=1e-12)
    assert run.train_steps == 160 and len(run.valid_fitness) == 2
    assert not run.aborted and run.fitness > 0.4


def test_predict_writes_memory_and_state_carries_it():
    model = ex.export(FIGURE6, features_size=4, eval_type="accuracy")
    state = model.init(jax.random.key(0))
    state = dict(state, m2=np.eye(4, dtype=np.float32), s2=np.float32(2.0))
    new_state, prediction = model.predict(state, np.ones(4, np.float32), jax.random.key(1))
    np.testing.assert_allclose(new_state["m0"], 2 * np.eye(4))
    assert 0.0 < float(prediction) < 1.0  # sigmoid applied for accuracy


def _deterministic_cases():
    rng = np.random.default_rng(21)
    cases = [generator.linear_model(0.01),
             generator.unit_test_neural_net_no_bias_no_gradient(0.01)]
    cases += [insert_random(generator.linear_model(0.03), rng, 6, DETERMINISTIC_OPS)
              for _ in range(2)]
    cases += [random_algorithm(rng, (3, 5, 6), DETERMINISTIC_OPS) for _ in range(2)]
    return cases


@pytest.mark.parametrize("eval_type", ["rms_error", "accuracy"])
def test_export_reproduces_interpreters(eval_type):
    if eval_type == "rms_error":
        task = az.tasks.scalar_2layer_nn_regression_task(4, 50, 20, data_seed=5, param_seed=6,
                                                         num_epochs=2)
    else:
        task = _binary_task(seed=9, epochs=2)
    fitnesses = set()
    for algorithm in _deterministic_cases():
        run = ex.run_task(algorithm, task, dtype="float64")
        reference = oracle.run(algorithm, task, **MEMORY, record_errors=(50, 0))
        assert run.fitness == pytest.approx(_cpu_fitness(algorithm, task, MEMORY), abs=1e-9)
        assert run.fitness == pytest.approx(reference.fitness, abs=1e-9)
        assert run.train_steps == reference.train_steps
        n = len(reference.train_errors)
        np.testing.assert_allclose(run.train_errors[:n], reference.train_errors, rtol=1e-9,
                                   atol=1e-12)
        fitnesses.add(round(run.fitness, 9))
    assert len(fitnesses - {0.0}) >= 3  # distinct, non-trivial outcomes were compared


def test_vector_labels_match_oracle():
    rng = np.random.default_rng(4)
    F, K = 4, 3
    x = rng.standard_normal((70, F))
    classes = np.argmax(x[:, :K] + 0.3 * rng.standard_normal((70, K)), axis=1)
    y = np.eye(K)[classes]
    task = az.Task(x[:50], y[:50], x[50:], y[50:], eval_type="accuracy")
    softmax_regression = parse_algorithm("""
    def Setup():
      s2 = 0.1
    def Predict():
      v2 = dot(m0, v0)
    def Learn():
      v3 = v1 - v2
      v3 = s2 * v3
      m1 = outer(v3, v0)
      m0 = m0 + m1
    """)
    run = ex.run_task(softmax_regression, task, dtype="float64")
    reference = oracle.run(softmax_regression, task, num_scalars=4, num_vectors=4,
                           num_matrices=2, record_errors=(50, 0))
    assert run.fitness == pytest.approx(reference.fitness, abs=1e-12)
    np.testing.assert_allclose(run.train_errors, reference.train_errors, rtol=1e-9)
    assert run.fitness > 0.6


def test_simplified_evolved_algorithm_exports_same_predictions():
    rng = np.random.default_rng(5)
    algorithm = insert_random(generator.linear_model(0.02), rng, 12, DETERMINISTIC_OPS)
    simplified = simp.simplify(algorithm)
    assert sum(simplified.sizes) < sum(algorithm.sizes)
    task = az.tasks.scalar_linear_regression_task(4, 60, 20, data_seed=1, param_seed=1)
    a = ex.run_task(algorithm, task, dtype="float64")
    b = ex.run_task(simplified, task, dtype="float64")
    np.testing.assert_array_equal(a.predictions, b.predictions)
    np.testing.assert_array_equal(a.valid_predictions, b.valid_predictions)


def test_random_ops_run_and_depend_on_the_key():
    model = ex.export(generator.neural_net(), features_size=4)
    a = model.init(jax.random.key(0))
    b = model.init(jax.random.key(1))
    assert not np.allclose(a["m0"], b["m0"])
    assert float(np.std(np.asarray(a["m0"]))) == pytest.approx(0.1, rel=0.5)
    uniform = ex.export(parse_algorithm(
        "def Setup():\n  s3 = uniform(2, 1)\n  v3 = uniform(-1, 1, n_features)\n"
        "def Predict():\n  s1 = mean(v3)\ndef Learn():\n"), features_size=8)
    state = uniform.init(jax.random.key(3))
    assert float(state["s3"]) == 2.0  # low >= high: exactly low
    assert np.all(np.abs(np.asarray(state["v3"])) < 1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="features_size"):
        ex.export(generator.linear_model(), features_size=0)
    with pytest.raises(ValueError, match="eval_type"):
        ex.export(generator.linear_model(), 4, eval_type="loss")
    with pytest.raises(ValueError, match="num_classes"):
        ex.export(generator.linear_model(), 4, num_classes=2)
    with pytest.raises(ValueError, match="dtype"):
        ex.export(generator.linear_model(), 4, dtype="float16")
    model = ex.export(generator.linear_model(), 4)
    task = az.tasks.scalar_linear_regression_task(5, 20, 5, data_seed=1, param_seed=1)
    with pytest.raises(ValueError, match="F=4"):
        ex.run_task(model, task)


# The best algorithm of a real demo search (azero-search --random_seed=1
# --backend=cpu --max_experiments=1), raw.
EVOLVED_DEMO = parse_algorithm("""
def Setup():
  v1 = s0 * v2
  s3 = 0.00229368
  s1 = -0.519213
  s3 = s3 - s1
  v2 = s1 * v1
  v1 = v0 + v1
  v2 = s0 * v0
  v2 = v0 + v2
  v2 = s0 * v0
  s1 = s1 * s3
def Predict():
  s2 = 0.894723
  s1 = dot(v0, v1)
def Learn():
  v1 = s0 * v0
  v1 = v2 + v1
  v1 = v1 + v2
  s1 = s2 * s3
  v1 = s1 * v1
  v1 = v2 + v1
  v2 = s1 * v1
  v1 = s1 * v2
""")


def test_evolved_demo_algorithm_simplified_and_exported_matches_interpreters():
    simplified = simp.simplify(EVOLVED_DEMO)
    assert simplified.sizes == (3, 2, 8)
    task = az.tasks.scalar_linear_regression_task(4, 100, 100, data_seed=3, param_seed=4)
    memory = dict(num_scalars=4, num_vectors=3, num_matrices=1)
    cpu = az.evaluate([EVOLVED_DEMO, simplified], task, **memory, backend="cpu")[:, 0]
    assert cpu[0] == cpu[1] and cpu[0] > 0.3
    run = ex.run_task(simplified, task, dtype="float64")
    assert run.fitness == pytest.approx(cpu[0], abs=1e-12)
    reference = oracle.run(EVOLVED_DEMO, task, **memory, record_errors=(100, 0))
    np.testing.assert_allclose(run.train_errors, reference.train_errors, rtol=1e-12)
