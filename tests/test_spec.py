"""Tests of the text-format spec parsing (spec §9)."""

import os

import pytest

from azero_jax.core.tasks import make_tasks
from azero_jax.spec import search_spec as spec_lib

SPECS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                     "azero_jax", "specs")


def _read(name):
    with open(os.path.join(SPECS, name)) as handle:
        return handle.read()


def test_demo_spec_parses_unchanged():
    spec = spec_lib.parse_search_experiment_spec(_read("demo_search.textproto"))
    assert spec.population_size == 1000 and spec.tournament_size == 10
    assert spec.size_inits == (10, 2, 8)
    assert spec.setup_ops == (56, 27, 2, 3, 18, 23) == spec.learn_ops
    assert spec.fec.num_train_examples == 10 and spec.fec.cache_size == 100000
    assert spec.fec.forget_every == 100
    assert spec.max_train_steps == 200000000 and spec.mutate_prob == 0.9
    assert spec.initial_population == "RANDOM_ALGORITHM"
    assert spec.mutation_types == ("ALTER_PARAM", "RANDOMIZE_INSTRUCTION",
                                   "RANDOMIZE_COMPONENT_FUNCTION")
    assert spec.train_budget is None and spec.hurdles is None
    assert spec.max_abs_error == 100.0 and spec.fitness_combination_mode == "mean"
    task = spec.search_tasks[0]
    assert (task.task_type, task.num_tasks, task.eval_type) == (
        "scalar_linear_regression_task", 10, "rms_error")


def test_nonlinear_spec_defaults_and_budget():
    spec = spec_lib.parse_search_experiment_spec(_read("nonlinear_search.textproto"))
    assert spec.train_budget.baseline == "NEURAL_NET_ALGORITHM"
    assert spec.train_budget.threshold_factor == 2.0
    assert spec.predict_ops == () and spec.learn_ops == ()
    assert spec.size_bounds == ((6, 7), (3, 4), (9, 10))
    assert spec.progress_every == 10000 and spec.fec is None


def test_task_collection_seeds_and_defaults():
    specs = spec_lib.parse_task_collection(_read("demo_final.textproto"))
    tasks = make_tasks(specs)
    assert len(tasks) == 100
    assert tasks[0].data_seed == 1000000 and tasks[99].param_seed == 2000099


def test_unknown_field_fails_naming_it():
    with pytest.raises(ValueError, match="max_individuals"):
        spec_lib.parse_search_experiment_spec(_read("demo_search.textproto") +
                                              "\nmax_individuals: 10\n")
    with pytest.raises(ValueError, match="num_train_exampels"):
        spec_lib.parse_task_collection("tasks { num_train_exampels: 3 }")
    with pytest.raises(ValueError, match="SCALAR_FOO_OP"):
        spec_lib.parse_search_experiment_spec("setup_ops: [SCALAR_FOO_OP]")


def test_required_fields():
    with pytest.raises(ValueError, match="search_tasks"):
        spec_lib.parse_search_experiment_spec("population_size: 10")
    text = _read("demo_search.textproto").replace("population_size: 1000", "")
    with pytest.raises(ValueError, match="population_size"):
        spec_lib.parse_search_experiment_spec(text)
    with pytest.raises(ValueError, match="eval_type"):
        spec_lib.parse_task_collection("tasks { scalar_linear_regression_task {} "
                                       "num_train_examples: 5 num_valid_examples: 5 }")


def test_hurdles_extension_and_task_params():
    spec = spec_lib.parse_search_experiment_spec(
        _read("demo_search.textproto") + "hurdles { num_tasks: 2 }")
    assert (spec.hurdles.percentile, spec.hurdles.num_tasks) == (75.0, 2)
    specs = spec_lib.parse_task_collection("""
      tasks { unit_test_increment_task { increment: 0.5 } features_size: 2
              num_train_examples: 10 num_valid_examples: 5 num_tasks: 1 eval_type: RMS_ERROR }
      tasks { projected_binary_classification_task { dataset_name: "cifar10" path: "/x"
                held_out_pairs { positive_class: 0 negative_class: 5 } }
              features_size: 16 num_train_examples: 10 num_valid_examples: 5 num_tasks: 1
              eval_type: ACCURACY }
      tasks { unit_test_fixed_task {
                train_features { elements: [1, 2] } train_labels { elements: [3] }
                valid_features { elements: [4, 5] } valid_labels { elements: [6] } }
              features_size: 2 num_train_examples: 1 num_valid_examples: 1 num_tasks: 1
              eval_type: RMS_ERROR }""")
    assert specs[0].param("increment") == 0.5
    projected = specs[1]
    assert projected.param("held_out_pairs") == ((0, 5),)
    assert projected.param("max_supported_data_seed") == 10
    assert projected.param("path") == "/x" and projected.eval_type == "accuracy"
    fixed = specs[2]
    assert fixed.param("train_labels") == (3.0,)
    assert fixed.param("train_features") == ((1.0, 2.0),)


def test_mutation_style_extension():
    from azero_jax.spec import spec_protos
    demo = _read("demo_search.textproto")
    assert spec_lib.parse_search_experiment_spec(demo).mutation_style == "REFERENCE"
    paper = spec_lib.parse_search_experiment_spec(demo + "mutation_style: PAPER")
    assert paper.mutation_style == "PAPER"
    field = spec_protos.SearchExperimentSpec.DESCRIPTOR.fields_by_name["mutation_style"]
    assert field.number >= 1000  # ours, far from the reference's field numbers
    with pytest.raises(ValueError, match="unknown enum value 'ORIGINAL'"):
        spec_lib.parse_search_experiment_spec(demo + "mutation_style: ORIGINAL")
    assert paper.replace(mutation_style="reference").mutation_style == "REFERENCE"
    with pytest.raises(ValueError, match="unknown mutation_style 'x'"):
        paper.replace(mutation_style="x")
