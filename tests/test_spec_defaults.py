"""Each spec default is written once: the Python configs agree with the proto table
(issue 15 point 7)."""

import dataclasses

import pytest

from azero_jax.core import generator
from azero_jax.core.tasks import TaskSpec
from azero_jax.evolution.fec import FECConfig
from azero_jax.evolution.hurdles import HurdlesConfig
from azero_jax.evolution.train_budget import TrainBudget, TrainBudgetConfig
from azero_jax.spec import search_spec as spec_lib
from azero_jax.spec import spec_protos

# Python config, its proto message, and the proto names of fields spelled differently.
PAIRS = [
    (spec_lib.SearchSpec, "SearchExperimentSpec", {"mutation_types": "allowed_mutation_types"}),
    (TrainBudgetConfig, "TrainBudgetSpec", {"baseline": "train_budget_baseline",
                                            "threshold_factor": "train_budget_threshold_factor"}),
    (HurdlesConfig, "HurdlesSpec", {}),
    (FECConfig, "FECSpec", {}),
    (TaskSpec, "TaskSpec", {}),
]
# The one deliberate difference: the proto's unset num_tasks (0) is refused (the
# reference requires > 0), while a TaskSpec built in Python means one task.
DIFFERENT = {("TaskSpec", "num_tasks")}


def _in_python_spelling(message: str, field: str):
    value = spec_protos.default(message, field)
    if field == "fitness_combination_mode":
        return spec_lib._fitness_mode(value)
    return value


def test_every_field_in_both_has_one_default():
    compared = set()
    for config, message, renamed in PAIRS:
        proto_fields = spec_protos.__dict__[message].DESCRIPTOR.fields_by_name
        for field in dataclasses.fields(config):
            name = renamed.get(field.name, field.name)
            if name not in proto_fields or field.default is dataclasses.MISSING:
                continue
            if (message, name) in DIFFERENT:
                assert field.default != spec_protos.default(message, name)
                continue
            assert field.default == _in_python_spelling(message, name), (message, name)
            compared.add(f"{message}.{name}")
    # Every default the table writes is compared, but those of task-type parameters:
    # they have no config class (a parsed TaskSpec carries them in ``params``).
    explicit = {f"{message}.{entry[0]}" for message, entries in spec_protos.MESSAGES.items()
                for entry in entries if len(entry) > 5 and entry[5] is not None}
    assert explicit - compared == {
        "UnitTestIncrementTaskSpec.increment",
        "ProjectedBinaryClassificationTask.min_supported_data_seed",
        "ProjectedBinaryClassificationTask.max_supported_data_seed"}
    assert {"SearchExperimentSpec.mutate_prob", "SearchExperimentSpec.initial_population",
            "SearchExperimentSpec.fitness_combination_mode", "FECSpec.cache_size",
            "TrainBudgetSpec.train_budget_threshold_factor", "HurdlesSpec.percentile",
            "TaskSpec.num_train_epochs"} <= compared


def test_unset_fields_convert_to_the_config_defaults():
    required = dict(search_tasks=spec_lib.parse_task_collection(
        "tasks { unit_test_ones_task {} features_size: 2 num_train_examples: 10 "
        "num_valid_examples: 5 num_tasks: 1 eval_type: RMS_ERROR }"),
        population_size=10, tournament_size=2, mutation_types=("ALTER_PARAM",),
        learn_ops=(1,))
    text = ("search_tasks { tasks { unit_test_ones_task {} features_size: 2 "
            "num_train_examples: 10 num_valid_examples: 5 num_tasks: 1 eval_type: RMS_ERROR } } "
            "population_size: 10 tournament_size: 2 learn_ops: [SCALAR_SUM_OP] "
            "allowed_mutation_types { mutation_types: [ALTER_PARAM_MUTATION_TYPE] }")
    assert spec_lib.parse_search_experiment_spec(text) == spec_lib.SearchSpec(**required)
    parsed = spec_lib.parse_search_experiment_spec(
        text + " train_budget {} hurdles {} fec { num_train_examples: 10 num_valid_examples: 5 }")
    assert parsed.train_budget == TrainBudgetConfig()
    assert parsed.hurdles == HurdlesConfig() == spec_lib.parse_hurdles("")
    assert parsed.fec == FECConfig(10, 5)


def test_threshold_factor_is_checked_by_the_config():
    assert TrainBudget(generator.neural_net()).threshold_factor == \
        TrainBudgetConfig().threshold_factor
    for make in (lambda: TrainBudgetConfig(threshold_factor=0.0),
                 lambda: TrainBudget(generator.neural_net(), 0.0)):
        with pytest.raises(ValueError, match="train_budget_threshold_factor must be > 0"):
            make()


def test_function_defaults_are_the_spec_defaults():
    """Functions that take a spec setting as an argument default to the spec's value (one
    source: the constant the proto table reads), not to a second copy of it."""
    import inspect

    from azero_jax.analysis import export
    from azero_jax.backends import evaluator
    from azero_jax.backends.cpu import cpu_evaluator
    from azero_jax.evolution.batch_mutator import BatchMutator
    from azero_jax.evolution.fec import FECCache
    from azero_jax.evolution.mutator import Mutator

    def default(function, name):
        return inspect.signature(function).parameters[name].default

    spec = "SearchExperimentSpec"
    for function in (evaluator.evaluate, evaluator.evaluate_pairs, cpu_evaluator.run_debug,
                     export.run_task, export.validate):
        assert default(function, "max_abs_error") == spec_protos.default(spec, "max_abs_error")
    for cls in (Mutator, BatchMutator):
        assert default(cls, "mutate_prob") == spec_protos.default(spec, "mutate_prob")
    assert default(FECCache, "cache_size") == spec_protos.default("FECSpec", "cache_size")
    assert default(FECCache, "forget_every") == spec_protos.default("FECSpec", "forget_every")
