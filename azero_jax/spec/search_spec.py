"""Experiment specs: the reference's text-format protos to frozen Python configs (spec §9).

:func:`parse_search_experiment_spec` reads the reference's ``--search_experiment_spec``
text (a ``SearchExperimentSpec``) into a :class:`SearchSpec`;
:func:`parse_task_collection` reads ``--select_tasks`` / ``--final_tasks`` (a
``TaskCollection``) into :class:`azero_jax.core.tasks.TaskSpec` tuples. A field the
reference does not have fails with a :class:`~azero_jax.core.errors.SpecError` (a
``ValueError``) naming it.

Example:
    >>> from azero_jax.spec.search_spec import parse_search_experiment_spec
    >>> spec = parse_search_experiment_spec('''
    ...   search_tasks { tasks { scalar_linear_regression_task {} features_size: 4
    ...     num_train_examples: 100 num_valid_examples: 100 num_tasks: 10 eval_type: RMS_ERROR } }
    ...   setup_ops: [SCALAR_CONST_SET_OP] predict_ops: [VECTOR_INNER_PRODUCT_OP]
    ...   learn_ops: [SCALAR_DIFF_OP, SCALAR_PRODUCT_OP, SCALAR_VECTOR_PRODUCT_OP, VECTOR_SUM_OP]
    ...   setup_size_init: 5 predict_size_init: 1 learn_size_init: 4
    ...   population_size: 1000 tournament_size: 10 initial_population: RANDOM_ALGORITHM
    ...   allowed_mutation_types { mutation_types: [ALTER_PARAM_MUTATION_TYPE] }''')
    >>> spec.population_size, spec.search_tasks[0].num_tasks, spec.fec
    (1000, 10, None)
"""

from __future__ import annotations

import dataclasses
import re

from google.protobuf import text_format

from azero_jax.core import generator as generator_lib
from azero_jax.core import ops as ops_lib
from azero_jax.core.errors import SpecError
from azero_jax.core.tasks import TaskSpec
from azero_jax.evolution.fec import FECConfig
from azero_jax.evolution.hurdles import HurdlesConfig
from azero_jax.evolution.mutator import MUTATION_TYPES, mutation_style, mutation_type
from azero_jax.evolution.train_budget import TrainBudgetConfig
from azero_jax.spec import spec_protos


def _default(field: str):
    """A ``SearchExperimentSpec`` default, written once in :mod:`azero_jax.spec.spec_protos`."""
    return spec_protos.default("SearchExperimentSpec", field)


def _fitness_mode(name: str) -> str:
    """``MEAN_FITNESS_COMBINATION`` -> ``"mean"`` (the :class:`SearchSpec` spelling)."""
    return name.split("_")[0].lower()


@dataclasses.dataclass(frozen=True)
class SearchSpec:
    """A ``SearchExperimentSpec`` (reference defaults; ``hurdles`` and ``mutation_style``
    are our extensions).

    Ops are op codes, ``initial_population`` a ``HardcodedAlgorithmID`` name,
    ``mutation_types`` short names (``"ALTER_PARAM"``, ...), ``fitness_combination_mode``
    ``"mean"`` or ``"median"``. Size bounds of 0 are unset (§6.6). ``mutation_style``
    is ``"REFERENCE"`` (the reference's mutations) or ``"PAPER"`` (the paper's S3 rules,
    :class:`azero_jax.evolution.mutator.Mutator`).
    """

    search_tasks: tuple[TaskSpec, ...]
    population_size: int
    tournament_size: int
    mutation_types: tuple[str, ...]
    setup_ops: tuple[int, ...] = ()
    predict_ops: tuple[int, ...] = ()
    learn_ops: tuple[int, ...] = ()
    setup_size_init: int = _default("setup_size_init")
    predict_size_init: int = _default("predict_size_init")
    learn_size_init: int = _default("learn_size_init")
    train_budget: TrainBudgetConfig | None = None
    max_abs_error: float = _default("max_abs_error")
    fec: FECConfig | None = None
    fitness_combination_mode: str = _fitness_mode(_default("fitness_combination_mode"))
    initial_population: str = _default("initial_population")
    max_train_steps: int = _default("max_train_steps")
    mutate_prob: float = _default("mutate_prob")
    mutate_setup_size_min: int = _default("mutate_setup_size_min")
    mutate_setup_size_max: int = _default("mutate_setup_size_max")
    mutate_predict_size_min: int = _default("mutate_predict_size_min")
    mutate_predict_size_max: int = _default("mutate_predict_size_max")
    mutate_learn_size_min: int = _default("mutate_learn_size_min")
    mutate_learn_size_max: int = _default("mutate_learn_size_max")
    progress_every: int = _default("progress_every")
    hurdles: HurdlesConfig | None = None
    mutation_style: str = _default("mutation_style")

    def __post_init__(self):
        if not self.search_tasks:
            raise SpecError("search_tasks must name at least one task")
        if int(self.population_size) < 1:
            raise SpecError(f"population_size must be >= 1, got {self.population_size}")
        if int(self.tournament_size) < 1:
            raise SpecError(f"tournament_size must be >= 1, got {self.tournament_size}")
        if not self.mutation_types:
            raise SpecError("allowed_mutation_types must list at least one mutation type")
        object.__setattr__(self, "mutation_types",
                           tuple(mutation_type(t) for t in self.mutation_types))
        object.__setattr__(self, "mutation_style", mutation_style(self.mutation_style))
        for name in ("setup_ops", "predict_ops", "learn_ops"):
            object.__setattr__(self, name, ops_lib.op_codes(getattr(self, name)))
        if self.initial_population not in generator_lib.HARDCODED:
            raise SpecError(f"unknown initial_population {self.initial_population!r}; expected "
                             f"one of {sorted(generator_lib.HARDCODED)}")
        if self.fitness_combination_mode not in ("mean", "median"):
            raise SpecError("fitness_combination_mode must be 'mean' or 'median', got "
                             f"{self.fitness_combination_mode!r}")
        if not 0.0 <= float(self.mutate_prob) <= 1.0:
            raise SpecError(f"mutate_prob must be in [0, 1], got {self.mutate_prob}")
        if int(self.max_train_steps) < 0 or int(self.progress_every) < 1:
            raise SpecError("max_train_steps must be >= 0 and progress_every >= 1")
        # An empty op list freezes its component function; mutations need one to change.
        needs_ops = set(self.mutation_types) - {"IDENTITY", "RANDOMIZE_ALGORITHM"}
        if needs_ops and not any(self.op_lists):
            raise SpecError("setup_ops, predict_ops and learn_ops are all empty, so "
                            f"{sorted(needs_ops)[0]}_MUTATION_TYPE has nothing to mutate: list "
                            "the allowed ops of at least one component function")
        total_tasks = sum(int(t.num_tasks) for t in self.search_tasks)
        if self.hurdles is not None and int(self.hurdles.num_tasks) > total_tasks:
            raise SpecError(f"hurdles.num_tasks is {self.hurdles.num_tasks} but search_tasks has "
                            f"only {total_tasks} tasks")

    @property
    def op_lists(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        return (self.setup_ops, self.predict_ops, self.learn_ops)

    @property
    def size_inits(self) -> tuple[int, int, int]:
        return (self.setup_size_init, self.predict_size_init, self.learn_size_init)

    @property
    def size_bounds(self) -> tuple[tuple[int, int], ...]:
        return ((self.mutate_setup_size_min, self.mutate_setup_size_max),
                (self.mutate_predict_size_min, self.mutate_predict_size_max),
                (self.mutate_learn_size_min, self.mutate_learn_size_max))

    def replace(self, **changes) -> "SearchSpec":
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------------------
# Text format -> messages.


def _parse(text: str, message, what: str):
    try:
        return text_format.Parse(text, message)
    except text_format.ParseError as error:
        detail = str(error)
        match = re.search(r'has no field named "([^"]+)"', detail)
        if match:
            raise SpecError(f"{what}: unsupported field {match.group(1)!r} ({detail}); "
                            "azero_jax accepts the reference's fields plus `hurdles { }` and "
                            "`mutation_style`") from None
        match = re.search(r'has no value named ([A-Za-z0-9_]+)', detail)
        if match:
            raise SpecError(f"{what}: unknown enum value {match.group(1)!r} ({detail})") from None
        raise SpecError(f"{what}: cannot parse the text-format proto: {detail}") from None


def _message_value(value):
    """A sub-message (or repeated field) as plain Python values."""
    if hasattr(value, "ListFields"):
        if value.DESCRIPTOR.name == "ClassPair":
            return (int(value.positive_class), int(value.negative_class))
        if value.DESCRIPTOR.name == "UnitTestFixedTaskVector":
            return tuple(float(x) for x in value.elements)
        out = {}
        for field in value.DESCRIPTOR.fields:
            if spec_protos.is_repeated(field):
                items = getattr(value, field.name)
                if len(items):
                    out[field.name] = tuple(_message_value(x) for x in items)
            elif value.HasField(field.name) or (field.has_default_value and
                                                field.type != field.TYPE_MESSAGE):
                out[field.name] = _message_value(getattr(value, field.name))
        return out
    return value


def _task_params(task_type: str, sub) -> tuple[tuple[str, object], ...]:
    params = _message_value(sub)
    if task_type == "unit_test_fixed_task":
        params.pop("test_features", None)
        params.pop("test_labels", None)
        for name in ("train_labels", "valid_labels"):
            labels = params.get(name, ())
            if any(len(label) != 1 for label in labels):
                raise SpecError(f"unit_test_fixed_task.{name}: each label needs exactly 1 element")
            params[name] = tuple(label[0] for label in labels)
        for name in ("train_features", "valid_features"):
            params.setdefault(name, ())
    if task_type == "projected_binary_classification_task" and "dataset" in params:
        params["dataset"] = sub.dataset  # the inline ScalarLabelDataset message itself
    return tuple(sorted(params.items()))


def task_spec_from_proto(proto) -> TaskSpec:
    """A ``TaskSpec`` message as an :class:`azero_jax.core.tasks.TaskSpec`."""
    task_type = proto.WhichOneof("task_type")
    if task_type is None:
        raise SpecError("TaskSpec: no task type set (e.g. scalar_linear_regression_task {})")
    if proto.eval_type == 0:
        raise SpecError(f"TaskSpec ({task_type}): eval_type is required (RMS_ERROR or ACCURACY)")
    for name in ("num_train_examples", "num_valid_examples"):
        if not proto.HasField(name):
            raise SpecError(f"TaskSpec ({task_type}): {name} is required")
    eval_type = spec_protos.EvalType.Name(proto.eval_type).lower()
    return TaskSpec(
        task_type=task_type,
        features_size=int(proto.features_size),
        num_train_examples=int(proto.num_train_examples),
        num_valid_examples=int(proto.num_valid_examples),
        eval_type=eval_type,
        num_tasks=int(proto.num_tasks),
        num_train_epochs=int(proto.num_train_epochs),
        data_seeds=tuple(int(s) for s in proto.data_seeds),
        param_seeds=tuple(int(s) for s in proto.param_seeds),
        params=_task_params(task_type, getattr(proto, task_type)))


def _hurdles_from_proto(proto) -> HurdlesConfig:
    return HurdlesConfig(float(proto.percentile), int(proto.num_train_examples),
                         int(proto.num_tasks))


def parse_task_collection(text: str, what: str = "TaskCollection") -> tuple[TaskSpec, ...]:
    """Parses a text-format ``TaskCollection`` into task specs.

    Example:
        >>> specs = parse_task_collection("tasks { unit_test_ones_task {} features_size: 2 "
        ...     "num_train_examples: 10 num_valid_examples: 5 num_tasks: 1 eval_type: RMS_ERROR }")
        >>> specs[0].task_type
        'unit_test_ones_task'
    """
    proto = _parse(text, spec_protos.TaskCollection(), what)
    if not proto.tasks:
        raise SpecError(f"{what}: the task collection is empty")
    return tuple(task_spec_from_proto(t) for t in proto.tasks)


def search_spec_from_proto(proto) -> SearchSpec:
    """A ``SearchExperimentSpec`` message as a :class:`SearchSpec`."""
    what = "search_experiment_spec"
    if not proto.HasField("search_tasks") or not proto.search_tasks.tasks:
        raise SpecError(f"{what}: search_tasks is required")
    for name in ("population_size", "tournament_size"):
        if not proto.HasField(name):
            raise SpecError(f"{what}: {name} is required")
    if not proto.HasField("allowed_mutation_types") or \
            not proto.allowed_mutation_types.mutation_types:
        raise SpecError(f"{what}: allowed_mutation_types {{ mutation_types: [...] }} is required")
    mode = spec_protos.FitnessCombinationMode.Name(proto.fitness_combination_mode)
    if mode == "UNKNOWN_FITNESS_COMBINATION":
        raise SpecError(f"{what}: fitness_combination_mode must be MEAN_FITNESS_COMBINATION or "
                         "MEDIAN_FITNESS_COMBINATION")
    fec = None
    if proto.HasField("fec"):
        if not proto.fec.HasField("num_train_examples") or not proto.fec.HasField("num_valid_examples"):
            raise SpecError(f"{what}: fec needs num_train_examples and num_valid_examples")
        fec = FECConfig(int(proto.fec.num_train_examples), int(proto.fec.num_valid_examples),
                        int(proto.fec.cache_size), int(proto.fec.forget_every))
    budget = None
    if proto.HasField("train_budget"):
        budget = TrainBudgetConfig(
            spec_protos.HardcodedAlgorithmID.Name(proto.train_budget.train_budget_baseline),
            float(proto.train_budget.train_budget_threshold_factor))
        if budget.baseline == "RANDOM_ALGORITHM":
            raise SpecError(f"{what}: train_budget_baseline cannot be RANDOM_ALGORITHM")
    hurdles = None
    if proto.HasField("hurdles"):
        hurdles = _hurdles_from_proto(proto.hurdles)
    return SearchSpec(
        search_tasks=tuple(task_spec_from_proto(t) for t in proto.search_tasks.tasks),
        population_size=int(proto.population_size),
        tournament_size=int(proto.tournament_size),
        mutation_types=tuple(MUTATION_TYPES[t] for t in proto.allowed_mutation_types.mutation_types),
        setup_ops=tuple(proto.setup_ops), predict_ops=tuple(proto.predict_ops),
        learn_ops=tuple(proto.learn_ops),
        setup_size_init=int(proto.setup_size_init),
        predict_size_init=int(proto.predict_size_init),
        learn_size_init=int(proto.learn_size_init),
        train_budget=budget,
        max_abs_error=float(proto.max_abs_error),
        fec=fec,
        fitness_combination_mode=_fitness_mode(mode),
        initial_population=spec_protos.HardcodedAlgorithmID.Name(proto.initial_population),
        max_train_steps=int(proto.max_train_steps),
        mutate_prob=float(proto.mutate_prob),
        mutate_setup_size_min=int(proto.mutate_setup_size_min),
        mutate_setup_size_max=int(proto.mutate_setup_size_max),
        mutate_predict_size_min=int(proto.mutate_predict_size_min),
        mutate_predict_size_max=int(proto.mutate_predict_size_max),
        mutate_learn_size_min=int(proto.mutate_learn_size_min),
        mutate_learn_size_max=int(proto.mutate_learn_size_max),
        progress_every=int(proto.progress_every),
        hurdles=hurdles,
        mutation_style=spec_protos.MutationStyle.Name(proto.mutation_style))


def parse_hurdles(text: str) -> HurdlesConfig:
    """Parses a text-format ``HurdlesSpec`` (the ``--hurdles`` flag), e.g. ``num_tasks: 2``.

    An empty text is the default first stage: the 75th percentile, every search task
    trained on the first fifth of its examples (see
    :class:`~azero_jax.evolution.hurdles.HurdlesConfig`).

    Example:
        >>> parse_hurdles("num_tasks: 2")
        HurdlesConfig(percentile=75.0, num_train_examples=0, num_tasks=2)
    """
    proto = _parse(text, spec_protos.HurdlesSpec(), "hurdles")
    try:
        return _hurdles_from_proto(proto)
    except ValueError as error:
        raise SpecError(str(error)) from None


def parse_search_experiment_spec(text: str) -> SearchSpec:
    """Parses the reference's text-format ``SearchExperimentSpec``."""
    return search_spec_from_proto(_parse(text, spec_protos.SearchExperimentSpec(),
                                         "search_experiment_spec"))
