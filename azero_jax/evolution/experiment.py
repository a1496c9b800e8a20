"""The experiments loop of the reference's ``run_search_experiment`` (spec §6.8).

One loop, :class:`ExperimentRunner`, for a single population and for islands: each
experiment draws its seeds from the main RNG, runs (one
:class:`~azero_jax.evolution.regularized_evolution.Search` until its train-step budget is used up,
or a run of islands), its candidate is evaluated on T_select (mean fitness, no FEC, no budget),
the best is kept (ties go to the later experiment), and the loop stops when the best
select fitness exceeds ``sufficient_fitness`` or after ``max_experiments`` (0 =
unlimited). The best algorithm is finally evaluated on T_final.

What runs inside one experiment is an :class:`Experiment` built by an
:class:`ExperimentKind` (:class:`SingleSearchKind` here,
:class:`~azero_jax.islands.experiments.IslandsKind` for islands): ``run(should_stop,
on_step)`` returns an :class:`ExperimentCandidate`, and ``state_dict`` /
``load_state_dict`` let the runner write one checkpoint (``checkpoint.npz``) holding
the loop state and the running experiment's.

Progress lines start exactly like the reference's
(``indivs=…, elapsed_secs=…, mean=…, stdev=…, best fit=…,``) and add individuals/s,
training steps/s and the FEC hit rate; the same figures go, one JSON object a line,
to the metrics log. With a checkpoint directory the whole loop (the experiment
counter, the best algorithm, the main RNG and the running experiment) is checkpointed
periodically and resumed when restarted with the same configuration.

Example:
    >>> import azero_jax as az
    >>> from azero_jax.evolution import experiment
    >>> from azero_jax.spec import search_spec as spec_lib
    >>> text = open("azero_jax/specs/linear_search.textproto").read()
    >>> config = experiment.ExperimentConfig(
    ...     search=spec_lib.parse_search_experiment_spec(text).replace(
    ...         population_size=20, max_train_steps=30000),
    ...     select_tasks=spec_lib.parse_task_collection(
    ...         open("azero_jax/specs/linear_select.textproto").read().replace("10000", "100")),
    ...     final_tasks=(), memory=az.MemoryConfig(4, 3, 1), random_seed=5, backend="cpu")
    >>> result = experiment.run_experiments(config, log=lambda line: None)
    >>> result["num_experiments"]
    1
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random as random_lib
import signal
import sys
import time
from typing import Callable, Protocol, Sequence

import numpy as np

from azero_jax.backends.evaluator import (MemoryConfig, check_tasks_fit_memory, combine_fitnesses,
                                          evaluate_pairs, resolve_backend)
from azero_jax.core.errors import CheckpointError, ConfigError
from azero_jax.core.program import Algorithm, format_algorithm
from azero_jax.core.tasks import TaskSpec, check_task_spec, make_tasks
from azero_jax.evolution import checkpoint as checkpoint_lib
from azero_jax.evolution import run_checks
from azero_jax.evolution.hurdles import HurdlesConfig
from azero_jax.evolution.regularized_evolution import Search
from azero_jax.spec.search_spec import SearchSpec

CHECKPOINT_NAME = run_checks.CHECKPOINT


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Everything the binary's flags set.

    Attributes:
      search: the search spec (``--search_experiment_spec``).
      select_tasks, final_tasks: T_select and T_final (an empty T_final skips the final
        evaluation).
      memory: address-space sizes (``--max_*_addresses``).
      random_seed: the main seed; 0 draws one from the clock (as the reference).
      max_experiments: 0 = unlimited.
      randomize_task_seeds: re-draw T_search and T_select seeds for every experiment.
      sufficient_fitness: stop once the best select fitness exceeds it (strictly).
      backend, child_batch_size: see :class:`~azero_jax.evolution.regularized_evolution.Search`.
      random_search: the paper's random-search baseline (Figure 4): the spec is changed as
        :func:`random_search_spec` says (random initial population, no FEC, no hurdles
        unless ``random_search_fec`` / ``hurdles`` ask for them).
      random_search_fec: keep the spec's FEC in a random search.
      hurdles: overrides the spec's ``hurdles`` (None keeps the spec's; with random
        search, None means no hurdles).
      output_dir: where ``summary.json`` and ``best_algorithm.txt`` go.
      checkpoint_dir: periodic checkpoints, resumed on restart.
      checkpoint_every_secs: seconds between checkpoints.
      metrics_log: JSON-lines metrics file (appended).
      max_individuals: optional cap on individuals per experiment (at a sweep boundary).
      stop_search_fitness: end an experiment early (normally: it is then evaluated on
        T_select) once its search fitness exceeds this; None runs every experiment to
        its train-step budget, as the reference does. Islands use it when their own
        ``stop_search_fitness`` is unset.
      evaluator_options: extra keyword arguments for the evaluator (e.g. ``dtype``).
    """

    search: SearchSpec
    select_tasks: tuple[TaskSpec, ...]
    final_tasks: tuple[TaskSpec, ...]
    memory: MemoryConfig
    random_seed: int = 0
    max_experiments: int = 1
    randomize_task_seeds: bool = False
    sufficient_fitness: float = sys.float_info.max
    backend: str = "auto"
    child_batch_size: int | None = None
    random_search: bool = False
    random_search_fec: bool = False
    hurdles: HurdlesConfig | None = None
    output_dir: str | None = None
    checkpoint_dir: str | None = None
    checkpoint_every_secs: float = 30.0
    metrics_log: str | None = None
    max_individuals: int | None = None
    stop_search_fitness: float | None = None
    evaluator_options: tuple[tuple[str, object], ...] = ()

    def __post_init__(self):
        if int(self.max_experiments) < 0:
            raise ConfigError(f"max_experiments must be >= 0, got {self.max_experiments}")
        if not self.select_tasks:
            raise ConfigError("select_tasks must name at least one task")
        if self.max_individuals is not None and int(self.max_individuals) < 1:
            raise ConfigError(f"max_individuals must be >= 1, got {self.max_individuals}")
        if self.child_batch_size is not None and int(self.child_batch_size) < 1:
            raise ConfigError(f"child_batch_size must be >= 1, got {self.child_batch_size}")
        if not float(self.checkpoint_every_secs) >= 0:
            raise ConfigError(f"checkpoint_every_secs must be >= 0, got "
                              f"{self.checkpoint_every_secs}")


def preflight(config: ExperimentConfig, spec: SearchSpec, islands=None) -> dict:
    """Checks, before any work, what would otherwise fail late; returns the memory estimate.

    Output paths must be writable; every task spec must be sound (including the islands'
    task sets, and hurdles must not ask for more tasks than a set has); the memory the
    configuration needs (population, task data, evaluations) must be available.

    Raises:
      ConfigError / SpecError: naming the problem (and giving the memory estimate).
    """
    run_checks.check_writable_folder(config.output_dir, "--output_dir")
    run_checks.check_writable_folder(config.checkpoint_dir, "--checkpoint_dir")
    run_checks.check_writable_file(config.metrics_log, "--metrics_log")
    collections = [("search_tasks", spec.search_tasks), ("select_tasks", config.select_tasks),
                   ("final_tasks", config.final_tasks)]
    population = None
    if islands is not None:
        collections += [(f"islands task set {name!r}", specs) for name, specs in islands.task_sets]
        population = sum(islands.population_size(i, spec) for i in range(islands.num_islands))
        if spec.hurdles is not None:
            for name, specs in islands.task_sets:
                count = sum(int(t.num_tasks) for t in specs)
                if int(spec.hurdles.num_tasks) > count:
                    raise ConfigError(f"hurdles.num_tasks is {spec.hurdles.num_tasks} but the "
                                      f"islands task set {name!r} has only {count} tasks")
    for what, specs in collections:
        for task_spec in specs:
            check_task_spec(task_spec, what)
    _check_search_setup(spec, config.memory)
    return run_checks.check_memory(
        spec, config.memory, [specs for _, specs in collections[1:]],
        population_total=population, backend=resolve_backend(config.backend),
        child_batch_size=config.child_batch_size)


def random_search_spec(spec: SearchSpec, *, fec: bool = False,
                       hurdles: HurdlesConfig | None = None) -> SearchSpec:
    """The spec of the paper's random-search baseline (Figure 4, S5) made from ``spec``.

    Random search proposes fresh random algorithms of the spec's ``*_size_init`` sizes
    (:class:`~azero_jax.evolution.regularized_evolution.Search` with ``random_search=True``); its
    initial population is random too (``initial_population: RANDOM_ALGORITHM``) rather than the
    evolution spec's usual empty programs, which would spend a whole population on one
    program. The paper's baseline uses neither FEC nor hurdles ("we do not use hurdles or
    additional data"): they are dropped unless asked for (``fec=True`` keeps the spec's
    FEC; ``hurdles`` sets hurdles).

    Example:
        >>> from azero_jax.spec import search_spec as spec_lib
        >>> s = spec_lib.parse_search_experiment_spec(
        ...     open("azero_jax/specs/demo_search.textproto").read())
        >>> r = random_search_spec(s)
        >>> r.initial_population, r.fec, r.hurdles, r.size_inits == s.size_inits
        ('RANDOM_ALGORITHM', None, None, True)
    """
    return spec.replace(initial_population="RANDOM_ALGORITHM",
                        fec=spec.fec if fec else None, hurdles=hurdles)


def search_spec(config: ExperimentConfig) -> SearchSpec:
    """The spec a run searches with: the config's spec, its ``hurdles`` override, and
    for random search :func:`random_search_spec`."""
    if config.random_search:
        return random_search_spec(config.search, fec=config.random_search_fec,
                                  hurdles=config.hurdles)
    if config.hurdles is not None:
        return config.search.replace(hurdles=config.hurdles)
    return config.search


def trim_metrics_log(path: str | None, experiment: int, individuals: int) -> int:
    """Drops the metrics records a resumed run will write again; returns how many.

    A run resumed from a checkpoint redoes the work done after it, and would append its
    progress records a second time: records of later experiments, and of ``experiment``
    past ``individuals`` (the checkpoint's count), are removed.
    """
    if not path or not os.path.exists(path):
        return 0
    with open(path) as handle:
        lines = handle.readlines()
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
            e, n = int(record["experiment"]), int(record["individuals"])
        except (ValueError, KeyError, TypeError):
            kept.append(line)  # not ours to judge
            continue
        if e < experiment or (e == experiment and n <= individuals):
            kept.append(line)
    if len(kept) != len(lines):
        tmp = path + ".tmp"
        with open(tmp, "w") as handle:
            handle.writelines(kept)
        os.replace(tmp, path)
    return len(lines) - len(kept)


def log_found_algorithm(log: Callable[[str], None], algorithm: Algorithm) -> None:
    """Prints the found algorithm as the reference does, then its simplified form."""
    from azero_jax.analysis.simplify import simplify
    log("Algorithm found: ")
    log(format_algorithm(algorithm).rstrip("\n"))
    try:
        small = simplify(algorithm)
    except Exception as error:  # the printout above is what matters; say why, carry on
        log(f"(could not simplify: {error})")
        return
    if small.sizes != algorithm.sizes:
        log("Simplified (instructions that cannot affect any prediction removed; "
            "same fitness): ")
        log(format_algorithm(small).rstrip("\n"))


def randomize_task_seeds(specs: Sequence[TaskSpec], seed: int) -> tuple[TaskSpec, ...]:
    """Fresh data and param seeds for every task (``RandomizeTaskSeeds``; our own stream).

    Seeds are uniform in ``(1, 2**32 - 1)``; per spec, ``num_tasks`` param seeds, then
    ``num_tasks`` data seeds.
    """
    rng = np.random.RandomState(int(seed) % 2**32)
    out = []
    for spec in specs:
        params = tuple(int(x) for x in rng.randint(2, 2**32 - 1, size=spec.num_tasks, dtype=np.int64))
        datas = tuple(int(x) for x in rng.randint(2, 2**32 - 1, size=spec.num_tasks, dtype=np.int64))
        out.append(dataclasses.replace(spec, param_seeds=params, data_seeds=datas))
    return tuple(out)


def format_progress(record: dict) -> str:
    """A progress line: the reference's prefix, then our throughput figures."""
    line = (f"indivs={record['individuals']}, elapsed_secs={int(record['elapsed_secs'])}, "
            f"mean={record['mean_fitness']:.6f}, stdev={record['stdev_fitness']:.6f}, "
            f"best fit={record['best_fitness']:.6f}, "
            f"indivs/s={record['individuals_per_sec']:.1f}, "
            f"train_steps/s={record['train_steps_per_sec']:.4g}, "
            f"fec_hit_rate={record['fec_hit_rate']:.4f}")
    if record.get("hurdle") is not None:
        line += f", hurdle={record['hurdle']:.6f}"
    return line


def evaluate_on_tasks(algorithm: Algorithm, task_specs: Sequence[TaskSpec], *, memory,
                      max_abs_error: float, seed: int, backend: str, **options) -> float:
    """Mean fitness of one algorithm on a task collection (T_select / T_final).

    ``options`` are the search's evaluator options (e.g. ``dtype``): a float64 search is
    ranked and reported in float64 too.
    """
    return float(mean_fitness_on_tasks([algorithm], make_tasks(task_specs), memory=memory,
                                       max_abs_error=max_abs_error, seed=seed,
                                       backend=backend, **options)[0])


def mean_fitness_on_tasks(algorithms: Sequence[Algorithm], tasks, *, memory,
                          max_abs_error: float, seed: int, backend: str,
                          evaluate_fn: Callable | None = None, **options) -> np.ndarray:
    """Mean fitness of each algorithm on built tasks, each evaluated as if alone.

    Every algorithm gets id 0 (what :func:`evaluate_on_tasks` gives its one algorithm),
    so random ops draw the same numbers whichever algorithms share the call.
    """
    algorithms, tasks = list(algorithms), list(tasks)
    a_index = np.repeat(np.arange(len(algorithms)), len(tasks))
    t_index = np.tile(np.arange(len(tasks)), len(algorithms))
    kwargs = dict(memory=memory, max_abs_error=max_abs_error, seed=seed,
                  algorithm_ids=np.zeros(len(algorithms), np.int64),
                  train_steps=np.array([tasks[t].total_train_steps for t in t_index],
                                       dtype=np.int64), backend=backend, **options)
    results = (evaluate_fn or evaluate_pairs)(algorithms, tasks, a_index, t_index, **kwargs)
    return combine_fitnesses(np.asarray(results.fitness, dtype=np.float64).reshape(
        len(algorithms), len(tasks)), "mean")  # the reference's CombineFitnesses


def _check_search_setup(spec: SearchSpec, memory: MemoryConfig) -> None:
    """What a search builds first (mutator, initial algorithm) must fit the memory sizes."""
    from azero_jax.core import generator
    from azero_jax.evolution.mutator import Mutator
    from azero_jax.core.program import validate_addresses
    try:
        Mutator(spec.op_lists, memory, spec.mutation_types, spec.mutate_prob, spec.size_bounds)
        if spec.initial_population != "RANDOM_ALGORITHM":
            initial = generator.hardcoded_algorithm(spec.initial_population, *spec.size_inits)
            validate_addresses(initial, memory.num_scalars, memory.num_vectors,
                               memory.num_matrices)
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(f"{error} (see --max_scalar_addresses, --max_vector_addresses, "
                          "--max_matrix_addresses)") from None


class _StopFlag:
    """First Ctrl-C or SIGTERM asks for a clean stop at the next step; a second one aborts.

    The clean stop saves a checkpoint and the summary, so ``kill`` (SIGTERM, what
    schedulers send) loses no work either.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self._previous: dict = {}

    def __enter__(self):
        try:
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        except ValueError:  # not the main thread
            self._previous = {}
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}


def _seed_from_clock() -> int:
    return (time.time_ns() % (2**32 - 2)) + 1


# --------------------------------------------------------------------------------------
# What runs inside one experiment: the protocol the runner drives.


@dataclasses.dataclass
class ExperimentCandidate:
    """What one experiment hands the loop.

    Attributes:
      algorithm: the experiment's candidate (exactly, not its 6-digit text).
      fitness: its search fitness (on the experiment's own T_search).
      num_individuals, train_steps, elapsed_secs: the experiment's totals.
      select_fitness: its fitness on T_select when the experiment already measured it
        (with the ``select_tasks`` and ``draws["select_seed"]`` it was given, as
        :func:`evaluate_on_tasks` would); None asks the runner to evaluate it. Islands
        rank their candidates on T_select, so theirs is set.
      origin: appended to the search-fitness line (e.g. ``" (island 2)"``).
      record: the kind's own fields for the experiment's record in ``summary.json``
        (e.g. FEC and hurdle counters, per-island counters and migrations).
    """

    algorithm: Algorithm
    fitness: float
    num_individuals: int
    train_steps: int
    elapsed_secs: float
    select_fitness: float | None = None
    origin: str = ""
    record: dict = dataclasses.field(default_factory=dict)


class Experiment(Protocol):
    """One experiment of the loop, built by :meth:`ExperimentKind.make` (one per experiment).

    ``run`` may be called on a freshly built experiment or on one restored with
    ``load_state_dict``; either way it runs to the end (or until ``should_stop()``).
    """

    description: str  # logged when the experiment starts (or resumes)

    def run(self, should_stop: Callable[[], bool],
            on_step: Callable[[], None]) -> ExperimentCandidate:
        """Runs the experiment; returns its candidate (also when stopped early).

        Polls ``should_stop()`` between steps and returns soon after it says True. Calls
        ``on_step()`` where ``state_dict()`` is consistent, so the runner can checkpoint
        there (an experiment that checkpoints itself need not call it).
        """

    def state_dict(self) -> tuple[dict, dict[str, np.ndarray]]:
        """``(JSON-able state, {name: array})`` from which ``load_state_dict`` resumes.

        Array names must not start with ``experiments_best`` (the loop's own arrays).
        """

    def load_state_dict(self, state: dict, arrays: dict[str, np.ndarray]) -> None:
        """Restores what ``state_dict`` returned (raises ValueError / KeyError when it
        does not fit)."""

    @property
    def num_individuals(self) -> int:
        """Individuals done in the state a resume restarts from (the runner drops the
        metrics records logged past it)."""


class ExperimentKind(Protocol):
    """The factory of a run's experiments: a single population or islands.

    Attributes:
      name: recorded in the checkpoint; a checkpoint of another kind is refused
        (``"single"`` or ``"islands"``, see :data:`~azero_jax.evolution.run_checks.KINDS`).
      islands: the islands config, or None (read by :func:`preflight` and by
        :func:`~azero_jax.evolution.run_checks.resume_fields`).
    """

    name: str
    islands: object | None

    def make(self, index: int, draws: dict, select_tasks: tuple[TaskSpec, ...],
             progress: Callable[[dict, str], None]) -> Experiment:
        """Builds experiment ``index`` from the loop's draws (``search_seed``,
        ``search_task_seed``, ``select_task_seed``, ``select_seed``), its T_select, and
        ``progress(record, line)`` to call with each progress record and its line."""

    def summary_fields(self, experiments: list[dict], last: dict | None) -> dict:
        """Fields the kind adds to ``summary.json`` from the experiment records and the
        last (possibly interrupted) experiment's record."""


def search_task_specs(config: ExperimentConfig, spec: SearchSpec,
                      draws: dict) -> tuple[TaskSpec, ...]:
    """T_search of an experiment: the spec's, seeds re-drawn with ``randomize_task_seeds``."""
    if config.randomize_task_seeds:
        return randomize_task_seeds(spec.search_tasks, draws["search_task_seed"])
    return spec.search_tasks


class SingleSearch:
    """One population (:class:`~azero_jax.evolution.regularized_evolution.Search`) as an
    :class:`Experiment`."""

    description = "Running evolution experiment (on the T_search tasks)..."

    def __init__(self, config: ExperimentConfig, spec: SearchSpec, draws: dict,
                 progress: Callable[[dict, str], None] | None = None):
        self.config = config
        spec = spec.replace(search_tasks=search_task_specs(config, spec, draws))
        self.search = Search(
            spec, memory=config.memory, seed=draws["search_seed"], backend=config.backend,
            child_batch_size=config.child_batch_size, random_search=config.random_search,
            progress_fn=None if progress is None else
            (lambda record: progress(record, format_progress(record))),
            evaluator_options=dict(config.evaluator_options))
        # The search calls its backend directly: check here what evaluate_pairs checks.
        check_tasks_fit_memory(self.search.tasks, config.memory)

    @property
    def num_individuals(self) -> int:
        return self.search.num_individuals

    def run(self, should_stop, on_step) -> ExperimentCandidate:
        search, target = self.search, self.config.stop_search_fitness
        # The search's own stop rule, not an interruption: the experiment ends normally.
        reached = (lambda: False) if target is None else \
            (lambda: search.num_individuals > 0 and search.candidate().fitness > target)
        candidate = search.run(max_individuals=self.config.max_individuals,
                               should_stop=lambda: should_stop() or reached(),
                               on_step=lambda _: on_step())
        if not should_stop():
            search.maybe_report(force=search.last_printed != search.num_individuals)
        return ExperimentCandidate(
            algorithm=candidate.algorithm, fitness=candidate.fitness,
            num_individuals=candidate.num_individuals, train_steps=candidate.train_steps,
            elapsed_secs=candidate.elapsed_secs, record={
                "fec_hit_rate": search.fec_hit_rate(),
                "fec_saved_train_steps": search.fec_saved_train_steps,
                "budget_rejections": search.budget_rejections,
                "child_batch_size": search.child_batch_size,
                "hurdles": search.hurdle_stats.to_dict()})

    def state_dict(self):
        return self.search.state_dict()

    def load_state_dict(self, state, arrays) -> None:
        self.search.load_state_dict(state, arrays)


@dataclasses.dataclass
class SingleSearchKind:
    """The :class:`ExperimentKind` of a single population: each experiment a
    :class:`SingleSearch`."""

    config: ExperimentConfig
    spec: SearchSpec
    name: str = "single"
    islands: None = None

    def make(self, index, draws, select_tasks, progress) -> SingleSearch:
        return SingleSearch(self.config, self.spec, draws, progress)

    def summary_fields(self, experiments, last) -> dict:
        return {}


# --------------------------------------------------------------------------------------
# The loop.


def run_experiments(config: ExperimentConfig, log: Callable[[str], None] = print,
                    islands=None, *, progress_fn: Callable[[dict], None] | None = None,
                    should_stop: Callable[[], bool] | None = None) -> dict:
    """Runs the experiments loop; returns the JSON summary (also written to output_dir).

    Args:
      config: the loop's configuration.
      log: receives every line the reference binary would print.
      islands: an :class:`~azero_jax.islands.IslandsConfig` makes every experiment a run
        of islands (:mod:`azero_jax.islands.experiments`); None, one population.
      progress_fn, should_stop: see :class:`ExperimentRunner`.
    """
    return ExperimentRunner(config, log, islands=islands, progress_fn=progress_fn,
                            should_stop=should_stop).run()


class ExperimentRunner:
    """The experiments loop, its state and its checkpoint, for any :class:`ExperimentKind`.

    Each experiment draws four seeds from the main RNG, is built by the kind, runs, and
    its candidate is evaluated on T_select (unless the candidate brings its select
    fitness); the best is kept (ties go to the later experiment). The loop stops when
    the best select fitness exceeds ``sufficient_fitness`` or after ``max_experiments``;
    the best is then evaluated on T_final.

    The checkpoint is one file, ``checkpoint_dir/checkpoint.npz`` (written by
    :func:`azero_jax.evolution.checkpoint.save`): the loop state (experiment counter, records, the
    best algorithm exactly, the main RNG, the running experiment's draws) and the
    running experiment's ``state_dict()``; its JSON records the kind, so a folder of the
    other kind, or of an older format, is refused with one line. It is written when an
    experiment starts, when it ends, every ``checkpoint_every_secs`` at the experiment's
    ``on_step`` calls, and on a stop request (SIGINT / SIGTERM, or ``should_stop``).

    Args:
      config: the loop's configuration.
      log: receives the printed lines.
      islands: see :func:`run_experiments`; ``kind`` overrides it.
      kind: the :class:`ExperimentKind` (default: a single population, or islands).
      progress_fn: also called with every progress record (with its ``experiment``).
      should_stop: polled with the signal flag; True stops the run as a signal does.
    """

    def __init__(self, config: ExperimentConfig, log: Callable[[str], None] = print, *,
                 islands=None, kind: ExperimentKind | None = None,
                 progress_fn: Callable[[dict], None] | None = None,
                 should_stop: Callable[[], bool] | None = None):
        self.config = config
        self.log = log
        self.spec = search_spec(config)
        if kind is None and islands is not None:
            from azero_jax.islands.experiments import IslandsKind
            kind = IslandsKind(config, self.spec, islands)
        self.kind = kind if kind is not None else SingleSearchKind(config, self.spec)
        self.progress_fn = progress_fn
        self.external_stop = should_stop or (lambda: False)
        self.seed = int(config.random_seed) or _seed_from_clock()
        self.rng = random_lib.Random(self.seed)
        self.num_experiments = 0
        self.best: tuple[Algorithm, float] | None = None
        self.best_algorithm: Algorithm | None = None  # what the summary reports, exactly
        self.experiments: list[dict] = []
        self.current: dict | None = None  # the running experiment's drawn values
        self.experiment: Experiment | None = None
        self.total_elapsed_before = 0.0
        self._start = time.monotonic()
        self._last_checkpoint = time.monotonic()
        self.interrupted = False
        self.finished = False  # every experiment done (a restart only re-prints the result)

    # -- checkpointing ------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> str | None:
        if not self.config.checkpoint_dir:
            return None
        return os.path.join(self.config.checkpoint_dir, CHECKPOINT_NAME)

    def _resume_fields(self) -> dict:
        return run_checks.resume_fields(self.config, self.spec, self.kind.islands)

    def save_checkpoint(self, with_experiment: bool = True) -> None:
        """Writes the loop state and (``with_experiment``) the running experiment's."""
        path = self.checkpoint_path
        if path is None:
            return
        state = {
            run_checks.KIND_FIELD: self.kind.name,
            "config_fields": self._resume_fields(),
            "random_seed": self.seed,
            "num_experiments": self.num_experiments,
            "experiments": self.experiments,
            "best_text": None if self.best is None else format_algorithm(self.best[0]),
            "best_select_fitness": None if self.best is None else self.best[1],
            "current": self.current,
            "main_rng": checkpoint_lib.rng_state_to_json(self.rng.getstate()),
            "total_elapsed_secs": self.elapsed_secs,
            "experiment": None,
            "finished": self.finished,
        }
        arrays = {}
        if with_experiment and self.experiment is not None and self.current is not None:
            state["experiment"], arrays = self.experiment.state_dict()
            arrays = dict(arrays)
        if self.best is not None:  # exactly (the text format keeps 6 digits only)
            arrays.update(checkpoint_lib.pack_algorithms([self.best[0]], "experiments_best"))
        checkpoint_lib.save(path, state, arrays)
        self._last_checkpoint = time.monotonic()

    def load_checkpoint(self) -> bool:
        """Restores the loop (and the running experiment) from the checkpoint, if any."""
        path = self.checkpoint_path
        if path is None or not os.path.exists(path):
            return False
        state, arrays = checkpoint_lib.load(path)
        run_checks.check_mode(path, state, self.kind.name)
        if self.config.random_seed and state["random_seed"] != self.seed:
            raise CheckpointError(f"{path} was written with --random_seed={state['random_seed']}"
                                  f", this run has {self.seed}; use the same flags or another "
                                  "--checkpoint_dir")
        run_checks.check_resume(path, state["config_fields"], self._resume_fields())
        self.seed = int(state["random_seed"])
        self.num_experiments = int(state["num_experiments"])
        self.experiments = list(state["experiments"])
        if state["best_text"] is not None:
            best = checkpoint_lib.unpack_algorithms(arrays, "experiments_best")[0]
            self.best = (best, float(state["best_select_fitness"]))
        self.rng.setstate(checkpoint_lib.rng_state_from_json(state["main_rng"]))
        self.total_elapsed_before = float(state["total_elapsed_secs"])
        self._start = time.monotonic()
        self.current = state["current"]
        self.finished = bool(state["finished"])
        if self.current is not None:
            self.experiment = self._make_experiment()
            if state["experiment"] is not None:
                try:
                    self.experiment.load_state_dict(state["experiment"], arrays)
                except (KeyError, ValueError, TypeError) as error:
                    raise CheckpointError(f"{path}: the experiment's state does not fit this "
                                          f"run ({error})") from None
        if self.finished:
            self.log(f"Resumed from {path}: all {self.num_experiments} experiments were done.")
        else:
            self.log(f"Resumed from {path}: experiment {self.num_experiments + 1}, "
                     f"{self.experiment.num_individuals if self.experiment else 0} individuals.")
        return True

    @property
    def elapsed_secs(self) -> float:
        return self.total_elapsed_before + (time.monotonic() - self._start)

    # -- one experiment -------------------------------------------------------------------

    def _draw_experiment(self) -> dict:
        draw = lambda: self.rng.randrange(1, 2**31 - 1)  # noqa: E731
        return {"search_seed": draw(), "search_task_seed": draw(), "select_task_seed": draw(),
                "select_seed": draw()}

    def _select_tasks(self) -> tuple[TaskSpec, ...]:
        """T_select of the running experiment (seeds re-drawn with randomize_task_seeds)."""
        if self.config.randomize_task_seeds:
            return randomize_task_seeds(self.config.select_tasks, self.current["select_task_seed"])
        return self.config.select_tasks

    def _make_experiment(self) -> Experiment:
        return self.kind.make(self.num_experiments, self.current, self._select_tasks(),
                              self._progress)

    def _progress(self, record: dict, line: str) -> None:
        self.log(line)
        record = {"experiment": self.num_experiments, **record}
        if self.config.metrics_log:
            directory = os.path.dirname(os.path.abspath(self.config.metrics_log))
            os.makedirs(directory, exist_ok=True)
            with open(self.config.metrics_log, "a") as handle:
                handle.write(json.dumps(record) + "\n")
        if self.progress_fn is not None:
            self.progress_fn(record)

    def _on_step(self) -> None:
        if (self.checkpoint_path is not None and
                time.monotonic() - self._last_checkpoint >= self.config.checkpoint_every_secs):
            self.save_checkpoint()

    def _record(self, candidate: ExperimentCandidate, select: float | None) -> dict:
        """The experiment's record in ``summary.json``: the loop's fields, then the kind's."""
        record = {
            "experiment": self.num_experiments, "search_fitness": candidate.fitness,
            "select_fitness": select, "individuals": candidate.num_individuals,
            "train_steps": candidate.train_steps, "search_elapsed_secs": candidate.elapsed_secs,
            "elapsed_secs": self.elapsed_secs,
            "algorithm": format_algorithm(candidate.algorithm)}
        record.update({k: v for k, v in candidate.record.items() if k not in record})
        return record

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> dict:
        """Checks the configuration and the checkpoint folder, then runs (or resumes)."""
        preflight(self.config, self.spec, self.kind.islands)
        folder = self.config.checkpoint_dir
        with run_checks.FolderLock(folder) if folder else contextlib.nullcontext():
            run_checks.check_old_format(folder)
            return self._run()

    def _run(self) -> dict:
        config = self.config
        if self.load_checkpoint():  # the work after the checkpoint is redone: so are its records
            trim_metrics_log(config.metrics_log, self.num_experiments,
                             self.experiment.num_individuals if self.experiment else 0)
        else:
            self.log(f"Random seed = {self.seed}")
        with _StopFlag() as stop:
            should_stop = lambda: stop.requested or self.external_stop()  # noqa: E731
            while not self.finished:
                if self.current is None:
                    self.current = self._draw_experiment()
                    self.experiment = self._make_experiment()
                    # The draws on disk before any work: what the experiment checkpoints
                    # by itself (islands) is resumed with the seeds it was started with.
                    self.save_checkpoint(with_experiment=False)
                self.log(self.experiment.description)
                candidate = self.experiment.run(should_stop, self._on_step)
                if should_stop():
                    return self._interrupted(candidate)
                self.log("Experiment done. Retrieving candidate algorithm.")
                self.log(f"Search fitness for candidate algorithm = {candidate.fitness:.6f}"
                         f"{candidate.origin}")
                self.log("Evaluating candidate algorithm from experiment (on T_select tasks)... ")
                select = candidate.select_fitness
                if select is None:
                    select = evaluate_on_tasks(
                        candidate.algorithm, self._select_tasks(), memory=config.memory,
                        max_abs_error=self.spec.max_abs_error, seed=self.current["select_seed"],
                        backend=config.backend, **dict(config.evaluator_options))
                select = float(select)
                self.log(f"Select fitness for candidate algorithm = {select:.6f}")
                if self.best is None or select >= self.best[1]:
                    self.best = (candidate.algorithm, select)
                    self.log("Select fitness is the best so far. ")
                self.experiments.append(self._record(candidate, select))
                self.current, self.experiment = None, None
                self.num_experiments += 1
                self.finished = (
                    (config.sufficient_fitness > 0 and self.best[1] > config.sufficient_fitness)
                    or bool(config.max_experiments and
                            self.num_experiments >= config.max_experiments))
                self.save_checkpoint()
        final = None
        if config.final_tasks:
            final_seed = self.rng.randrange(1, 2**31 - 1)
            final = evaluate_on_tasks(self.best[0], config.final_tasks, memory=config.memory,
                                      max_abs_error=self.spec.max_abs_error, seed=final_seed,
                                      backend=config.backend, **dict(config.evaluator_options))
            self.log("")
            self.log("Final evaluation of best algorithm (on unseen tasks)...")
            self.log(f"Final evaluation fitness (on unseen data) = {final:.6f}")
        log_found_algorithm(self.log, self.best[0])
        return self._summary(final_fitness=final)

    def _interrupted(self, candidate: ExperimentCandidate) -> dict:
        """A stop request: checkpoint, the best so far (the loop's, else the running
        experiment's candidate), and the summary without a final evaluation."""
        self.interrupted = True
        self.save_checkpoint()
        best = self.best[0] if self.best is not None else candidate.algorithm
        self.log("Interrupted: checkpoint saved." if self.checkpoint_path else "Interrupted.")
        self.log("Best algorithm so far:")
        self.log(format_algorithm(best).rstrip("\n"))
        return self._summary(final_fitness=None, best=best,
                             last=self._record(candidate, None))

    def _summary(self, final_fitness, best: Algorithm | None = None,
                 last: dict | None = None) -> dict:
        """The JSON summary; ``best`` overrides the best on T_select (an interrupted run's)
        and ``last`` is the record of an interrupted experiment."""
        best = best if best is not None else (None if self.best is None else self.best[0])
        self.best_algorithm = best
        best_text = None if best is None else format_algorithm(best)
        latest = last if last is not None else (self.experiments[-1] if self.experiments
                                                else None)
        summary = {
            "kind": self.kind.name,
            "random_seed": self.seed,
            "num_experiments": self.num_experiments,
            "interrupted": self.interrupted,
            "best_select_fitness": None if self.best is None else self.best[1],
            "final_fitness": final_fitness,
            "elapsed_secs": self.elapsed_secs,
            "experiments": self.experiments,
            "best_algorithm": best_text,
            "memory": dataclasses.asdict(self.config.memory),
            "backend": self.config.backend,
            "child_batch_size": (latest or {}).get("child_batch_size",
                                                   self.config.child_batch_size),
            "random_search": self.config.random_search,
            **self.kind.summary_fields(self.experiments, latest),
        }
        if self.experiments:
            best_exp = max(self.experiments, key=lambda e: e["select_fitness"])
            summary["best_search_fitness"] = best_exp["search_fitness"]
        if self.config.output_dir:
            os.makedirs(self.config.output_dir, exist_ok=True)
            with open(os.path.join(self.config.output_dir, "summary.json"), "w") as handle:
                json.dump(summary, handle, indent=1)
            if best_text is not None:
                with open(os.path.join(self.config.output_dir, "best_algorithm.txt"), "w") as handle:
                    handle.write(best_text)
        return summary
