"""The reference's experiment-spec messages, built without ``protoc`` (spec §9).

Names, field numbers, types, labels and defaults are those of the reference's
``experiment.proto``, ``task.proto``, ``fec_cache.proto``, ``train_budget.proto``,
``mutator.proto``, ``generator.proto`` and ``instruction.proto`` (package
``automl_zero``), so the reference's text-format flags parse unchanged. Our
extensions use field numbers >= 1000, far from the reference's:

* ``SearchExperimentSpec.hurdles`` (1000): a :class:`HurdlesSpec` (paper S3 hurdles);
* ``TaskSpec.scalar_affine_regression_task`` (1000, in the ``task_type`` oneof): linear
  regression with a bias (paper S5), which the reference lacks;
* ``SearchExperimentSpec.mutation_style`` (1001): a :data:`MutationStyle`, ``REFERENCE``
  (default, the reference's mutations) or ``PAPER`` (the paper's S3 rules; see
  :class:`azero_jax.evolution.mutator.Mutator`).

Each field's default is written once. :data:`MESSAGES` holds the defaults of the messages
whose Python configs are built here (``SearchExperimentSpec`` -> ``spec.SearchSpec``,
``TrainBudgetSpec``, ``HurdlesSpec``), and those configs read them with :func:`default`.
``FECSpec`` and ``TaskSpec.num_train_epochs`` read theirs from their configs
(:class:`azero_jax.evolution.fec.FECConfig`, :class:`azero_jax.core.tasks.TaskSpec`), leaf modules
that must not import protobuf.

Example:
    >>> from google.protobuf import text_format
    >>> from azero_jax.spec import spec_protos
    >>> spec = text_format.Parse("population_size: 100 fec { num_train_examples: 10 }",
    ...                          spec_protos.SearchExperimentSpec())
    >>> spec.population_size, spec.fec.cache_size
    (100, 100000)
"""

from __future__ import annotations

import dataclasses

from azero_jax.core import ops as ops_lib
from azero_jax.core.results import MAX_ABS_ERROR
from azero_jax.core.tasks import TaskSpec as _TaskConfig
from azero_jax.evolution.fec import FECConfig
from azero_jax.evolution.mutator import MUTATE_PROB
from azero_jax.spec import protos  # defines automl_zero.ScalarLabelDataset / FeatureVector

FILE = "automl_zero/azero_jax_experiment.proto"
PACKAGE = "automl_zero"

ENUMS = {
    "Op": [(spec.name, spec.code) for spec in ops_lib.OPS],
    "EvalType": [("INVALID_EVAL_TYPE", 0), ("RMS_ERROR", 1), ("ACCURACY", 4)],
    "ActivationType": [("RELU", 0), ("TANH", 1)],
    "FitnessCombinationMode": [("UNKNOWN_FITNESS_COMBINATION", 0),
                               ("MEAN_FITNESS_COMBINATION", 1),
                               ("MEDIAN_FITNESS_COMBINATION", 3)],
    "HardcodedAlgorithmID": [("NO_OP_ALGORITHM", 0), ("RANDOM_ALGORITHM", 1),
                             ("LINEAR_ALGORITHM", 2), ("NEURAL_NET_ALGORITHM", 3),
                             ("INTEGRATION_TEST_DAMAGED_NEURAL_NET_ALGORITHM", 4)],
    "MutationType": [("ALTER_PARAM_MUTATION_TYPE", 0),
                     ("RANDOMIZE_INSTRUCTION_MUTATION_TYPE", 1),
                     ("RANDOMIZE_COMPONENT_FUNCTION_MUTATION_TYPE", 2),
                     ("IDENTITY_MUTATION_TYPE", 3),
                     ("INSERT_INSTRUCTION_MUTATION_TYPE", 4),
                     ("REMOVE_INSTRUCTION_MUTATION_TYPE", 5),
                     ("TRADE_INSTRUCTION_MUTATION_TYPE", 6),
                     ("RANDOMIZE_ALGORITHM_MUTATION_TYPE", 7)],
    "MutationStyle": [("REFERENCE", 0), ("PAPER", 1)],  # ours
}

# Task types of the TaskSpec oneof: (field name, number, message type).
TASK_TYPES = (
    ("scalar_linear_regression_task", 6, "ScalarLinearRegressionTaskSpec"),
    ("scalar_2layer_nn_regression_task", 7, "Scalar2LayerNNRegressionTaskSpec"),
    ("projected_binary_classification_task", 24, "ProjectedBinaryClassificationTask"),
    ("unit_test_fixed_task", 40, "UnitTestFixedTask"),
    ("unit_test_zeros_task", 45, "UnitTestZerosTaskSpec"),
    ("unit_test_ones_task", 46, "UnitTestOnesTaskSpec"),
    ("unit_test_increment_task", 47, "UnitTestIncrementTaskSpec"),
    ("scalar_affine_regression_task", 1000, "ScalarAffineRegressionTaskSpec"),  # ours
)


def _config_default(config, name: str):
    """The default of a dataclass field (a default owned by a leaf config module)."""
    return next(f.default for f in dataclasses.fields(config) if f.name == name)


MESSAGES = {
    "ScalarLinearRegressionTaskSpec": [],
    "Scalar2LayerNNRegressionTaskSpec": [],
    "ScalarAffineRegressionTaskSpec": [],
    "ClassPair": [("positive_class", 1, "int32"), ("negative_class", 2, "int32")],
    "ProjectedBinaryClassificationTask": [
        ("positive_class", 1, "int32"),
        ("negative_class", 2, "int32"),
        ("dataset_name", 3, "string"),
        ("path", 4, "string", "optional", None, None, "task_source"),
        ("dataset", 5, "ScalarLabelDataset", "optional", None, None, "task_source"),
        ("held_out_pairs", 6, "ClassPair", "repeated"),
        ("min_supported_data_seed", 7, "int32", "optional", None, 0),
        ("max_supported_data_seed", 8, "int32", "optional", None, 10),
    ],
    "UnitTestFixedTaskVector": [("elements", 1, "double", "repeated")],
    "UnitTestFixedTask": [
        ("train_features", 1, "UnitTestFixedTaskVector", "repeated"),
        ("train_labels", 2, "UnitTestFixedTaskVector", "repeated"),
        ("valid_features", 3, "UnitTestFixedTaskVector", "repeated"),
        ("valid_labels", 4, "UnitTestFixedTaskVector", "repeated"),
        ("test_features", 5, "UnitTestFixedTaskVector", "repeated"),
        ("test_labels", 6, "UnitTestFixedTaskVector", "repeated"),
    ],
    "UnitTestZerosTaskSpec": [],
    "UnitTestOnesTaskSpec": [],
    "UnitTestIncrementTaskSpec": [("increment", 1, "double", "optional", None, 1.0)],
    "TaskSpec": [
        ("features_size", 13, "int32"),
        ("num_train_examples", 1, "int32"),
        ("num_train_epochs", 21, "int32", "optional", None,
         _config_default(_TaskConfig, "num_train_epochs")),
        ("num_valid_examples", 2, "int32"),
        ("num_tasks", 3, "int32"),
        ("data_seeds", 4, "uint32", "repeated"),
        ("param_seeds", 5, "uint32", "repeated"),
        ("eval_type", 28, "EvalType"),
        *[(name, number, type_, "optional", None, None, "task_type")
          for name, number, type_ in TASK_TYPES],
        ("num_test_examples", 18, "int32"),
    ],
    "TaskCollection": [("tasks", 1, "TaskSpec", "repeated")],
    "FECSpec": [
        ("num_train_examples", 2, "int64"),
        ("num_valid_examples", 3, "int64"),
        ("cache_size", 4, "int64", "optional", None, _config_default(FECConfig, "cache_size")),
        ("forget_every", 1, "int64", "optional", None,
         _config_default(FECConfig, "forget_every")),
    ],
    "TrainBudgetSpec": [
        ("train_budget_baseline", 1, "HardcodedAlgorithmID", "optional", None,
         "NEURAL_NET_ALGORITHM"),
        ("train_budget_threshold_factor", 2, "double", "optional", None, 2.0),
    ],
    "MutationTypeList": [("mutation_types", 1, "MutationType", "repeated")],
    # Ours (paper S3): rolling hurdle; see azero_jax.evolution.hurdles.
    "HurdlesSpec": [
        ("percentile", 1, "double", "optional", None, 75.0),
        ("num_train_examples", 2, "int64", "optional", None, 0),
        ("num_tasks", 3, "int64", "optional", None, 0),
    ],
    "SearchExperimentSpec": [
        ("search_tasks", 20, "TaskCollection"),
        ("setup_ops", 34, "Op", "repeated"),
        ("predict_ops", 35, "Op", "repeated"),
        ("learn_ops", 36, "Op", "repeated"),
        ("setup_size_init", 5, "int32"),
        ("predict_size_init", 6, "int32"),
        ("learn_size_init", 7, "int32"),
        ("train_budget", 3, "TrainBudgetSpec"),
        ("max_abs_error", 14, "double", "optional", None, MAX_ABS_ERROR),
        ("fec", 2, "FECSpec"),
        ("fitness_combination_mode", 1, "FitnessCombinationMode", "optional", None,
         "MEAN_FITNESS_COMBINATION"),
        ("population_size", 33, "int64"),
        ("tournament_size", 19, "int64"),
        ("initial_population", 4, "HardcodedAlgorithmID", "optional", None, "NO_OP_ALGORITHM"),
        ("max_train_steps", 15, "int64", "optional", None, 80000000000),
        ("allowed_mutation_types", 17, "MutationTypeList"),
        ("mutate_prob", 18, "double", "optional", None, MUTATE_PROB),
        ("mutate_setup_size_min", 8, "int32"),
        ("mutate_setup_size_max", 9, "int32"),
        ("mutate_predict_size_min", 10, "int32"),
        ("mutate_predict_size_max", 11, "int32"),
        ("mutate_learn_size_min", 12, "int32"),
        ("mutate_learn_size_max", 13, "int32"),
        ("progress_every", 16, "int64", "optional", None, 10000),
        ("hurdles", 1000, "HurdlesSpec"),  # ours
        ("mutation_style", 1001, "MutationStyle", "optional", None, "REFERENCE"),  # ours
    ],
}

_CLASSES = protos.build_messages(FILE, PACKAGE, MESSAGES, ENUMS,
                                 dependencies=[protos.DATASETS_PROTO])

SearchExperimentSpec = _CLASSES["SearchExperimentSpec"]
TaskCollection = _CLASSES["TaskCollection"]
TaskSpec = _CLASSES["TaskSpec"]
FECSpec = _CLASSES["FECSpec"]
TrainBudgetSpec = _CLASSES["TrainBudgetSpec"]
MutationTypeList = _CLASSES["MutationTypeList"]
HurdlesSpec = _CLASSES["HurdlesSpec"]
Op = _CLASSES["Op"]
EvalType = _CLASSES["EvalType"]
FitnessCombinationMode = _CLASSES["FitnessCombinationMode"]
HardcodedAlgorithmID = _CLASSES["HardcodedAlgorithmID"]
MutationType = _CLASSES["MutationType"]
MutationStyle = _CLASSES["MutationStyle"]


def is_repeated(field) -> bool:
    """Whether a field descriptor is ``repeated``."""
    if hasattr(field, "is_repeated"):  # protobuf >= 5.28 (label was removed in 7)
        return bool(field.is_repeated)
    return field.label == field.LABEL_REPEATED


def default(message: str, field: str):
    """The default of ``message.field``: an enum value by name, ``()`` for a repeated
    field, ``None`` for a sub-message, else the value (0, 0.0 or "" where the table
    gives none).

    Example:
        >>> default("TrainBudgetSpec", "train_budget_baseline")
        'NEURAL_NET_ALGORITHM'
        >>> default("SearchExperimentSpec", "mutate_prob")
        0.9
    """
    descriptor = _CLASSES[message].DESCRIPTOR.fields_by_name[field]
    if is_repeated(descriptor):
        return ()
    if descriptor.enum_type is not None:
        return descriptor.enum_type.values_by_number[descriptor.default_value].name
    return descriptor.default_value
