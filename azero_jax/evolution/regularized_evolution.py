"""Regularized evolution (spec §6.7) over instruction tensors, with FEC, train budget and hurdles.

The controller runs on the host, on whole batches: a population is a
:class:`~azero_jax.core.population.Programs` tensor with fitness and birth arrays, and one
step makes ``B`` children (``child_batch_size``) with a handful of compiled calls:

1. ``B`` tournaments over the current population (``tournament_size`` draws with
   replacement; strictly highest fitness wins, ties to the earliest drawn);
2. the parents' rows copied and one mutation each (:mod:`azero_jax.evolution.batch_mutator`);
3. the train budget per (child, task) (§8);
4. with FEC: one batched probe of the children not probed recently (short run, fixed
   seed, errors recorded), fingerprints hashed, one batched cache lookup (§7);
5. with hurdles: a cheap first stage; children below the rolling hurdle keep their
   first-stage fitness (paper S3; see below);
6. one batched full evaluation of the remaining misses;
7. the children replace the ``B`` oldest individuals (cyclic slots).

With ``B = 1`` this is the reference's loop (one detail differs: the reference inserts
a child's task-0 result into the cache before looking up its task-1 fingerprint, so at
full cache capacity its eviction order can differ). With ``B > 1`` the ``B`` tournaments
of a step see the population as it was before the step, so ``B`` should stay a small
part of ``P`` (the default is at most ``P / 10``: with ``B = P`` every step would replace
the whole population, a generational algorithm). A fingerprint repeated within a step is
evaluated once and its later sightings are cache hits, as they would be in sequence (if
``forget_every`` erases the entry within the step, the later sightings still reuse the
step's result). Steps never cross a sweep boundary, so the train-step budget is checked
between sweeps of ``P`` children, as in the reference (the initial population and every
FEC fingerprint run count).

Random numbers: tournaments, mutations and random algorithms draw from counter-based
streams keyed by the search seed and each child's individual number, so a child does not
depend on the batch it was made in and a checkpoint holds no generator state. Full and
hurdle evaluations use an evaluation seed derived from the search seed with each
child's individual number as its algorithm id (children with random ops draw different
numbers); FEC probes use the reference's fixed seed 235732282 and id 0 (fingerprints are
deterministic, so a probe is memoised per exact program).

Hurdles: the rolling hurdle is the ``percentile``-th percentile of the population's
unique *first-stage* fitnesses -- the same measurement a child is judged on. When the
first stage is the first ``k`` tasks with all their training examples
(``num_train_examples: 0``), it is part of the full evaluation: every evaluated child
gets a stage fitness for free, and a child that passes is evaluated only on the
remaining tasks. When the stage trains on fewer examples, a child that passes is
evaluated again from the start: the stage's validation pass runs Predict, which may
write memory that the next training steps read, so continuing from the stage would not
equal a fresh full evaluation. Such a stage is run only for children that face the
hurdle, so the hurdle is drawn from the individuals that have a stage fitness.

``random_search=True`` replaces steps 1-2 with fresh random algorithms of the spec's
initial sizes (the paper's random-search baseline), with the same accounting.

Steps 3-6 are the search's evaluation policy, :class:`~azero_jax.evolution.search_evaluator.
SearchEvaluator` (``Search.evaluation``, which also keeps the training-step, cache and
hurdle counters). It makes :class:`EvalRequest` batches as a generator
(:meth:`Search.step_requests`), so a driver can merge the requests of many islands into
one device call; :meth:`Search.step` drives them with the search's backend.

Example:
    >>> from azero_jax.spec import search_spec as spec_lib
    >>> from azero_jax.core.memory import MemoryConfig
    >>> from azero_jax.evolution.regularized_evolution import Search
    >>> s = spec_lib.parse_search_experiment_spec(open("azero_jax/specs/linear_search.textproto").read())
    >>> search = Search(s.replace(population_size=20, max_train_steps=20000),
    ...                 memory=MemoryConfig(4, 3, 1), seed=1, backend="cpu")
    >>> result = search.run()
    >>> search.num_individuals >= 20
    True
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Generator, Sequence

import numpy as np

from azero_jax.backends import backend as backend_lib
from azero_jax.backends import evaluator as evaluator_lib
from azero_jax.core import allocator
from azero_jax.core import generator as generator_lib
from azero_jax.core.memory import MemoryConfig
from azero_jax.core.population import Programs, as_programs
from azero_jax.core.program import Algorithm, validate_addresses
from azero_jax.core.results import PairResults
from azero_jax.core.tasks import Task, make_tasks
from azero_jax.evolution.batch_mutator import BatchMutator
from azero_jax.evolution.hurdles import hurdle_value
from azero_jax.evolution.search_evaluator import EvalRequest, PopulationFitness, SearchEvaluator
from azero_jax.spec.search_spec import SearchSpec


# cpu backend threads per search (see Search.__init__).
SEARCH_THREADS = 1


def default_child_batch_size(population_size: int, backend: str) -> int:
    """At most a tenth of the population (regularized evolution stays steady-state);
    large device batches come from many islands evaluated together."""
    cap = 1024 if backend in ("jax", "cuda") else 256  # device backends take larger steps
    return max(1, min(population_size // 10, cap))


@dataclasses.dataclass
class Candidate:
    """The result of a search: the final candidate and some statistics."""

    algorithm: Algorithm
    fitness: float
    num_individuals: int
    train_steps: int
    elapsed_secs: float


class Search:
    """One regularized-evolution (or random-search) population and its controller.

    Args:
      spec: the search spec (population, tournament, ops, mutations, FEC, budget, ...).
      memory: address-space sizes.
      seed: the controller's random seed (mutation, tournaments, random init; evaluation
        seeds are derived from it).
      backend: evaluator backend, ``"auto"``, ``"cpu"`` or ``"jax"``.
      child_batch_size: children per step (default: see :func:`default_child_batch_size`).
      random_search: propose fresh random algorithms instead of mutants.
      tasks: the search tasks (default ``make_tasks(spec.search_tasks)``).
      evaluate_fn: an ``evaluate_pairs``-compatible callable (default the library's); it
        receives :class:`~azero_jax.core.program.Algorithm` lists.
      progress_fn: called with :meth:`progress_record` whenever the reference would print
        a progress line (after the initial population and after sweeps).
      evaluator_options: extra keyword arguments for the evaluator (e.g. ``dtype``,
        ``num_threads``: the cpu backend runs a search in one thread unless told otherwise).
    """

    def __init__(self, spec: SearchSpec, *, memory: MemoryConfig, seed: int = 1,
                 backend: str = "auto", child_batch_size: int | None = None,
                 random_search: bool = False, tasks: Sequence[Task] | None = None,
                 evaluate_fn: Callable | None = None,
                 progress_fn: Callable[[dict], None] | None = None,
                 evaluator_options: dict | None = None):
        allocator.keep_freed_memory()  # steps re-allocate the same temporaries
        self.spec = spec
        self.memory = memory
        self.seed = int(seed)
        self.backend = evaluator_lib.resolve_backend(backend) if evaluate_fn is None else backend
        self.random_search = bool(random_search)
        self.tasks = list(make_tasks(spec.search_tasks) if tasks is None else tasks)
        self.evaluate_fn = evaluate_fn
        self.progress_fn = progress_fn
        self.evaluator_options = dict(evaluator_options or {})
        if self.backend == "cpu" and evaluate_fn is None:
            # One thread: a step's evaluation is a few milliseconds between host work, and
            # threads splitting it made the demo slower (64 k vs 38 k individuals/s on 2
            # cores, docs/benchmarks.md). More cores: more populations (islands).
            self.evaluator_options.setdefault("num_threads", SEARCH_THREADS)
        P = int(spec.population_size)
        self.child_batch_size = int(child_batch_size or default_child_batch_size(P, self.backend))
        if self.child_batch_size < 1:
            raise ValueError(f"child_batch_size must be >= 1, got {child_batch_size}")
        self.mutator = BatchMutator(spec.op_lists, memory, spec.mutation_types, spec.mutate_prob,
                                    spec.size_bounds,
                                    style=getattr(spec, "mutation_style", "REFERENCE"))
        self.evaluation = SearchEvaluator(spec, seed=self.seed,
                                          child_batch_size=self.child_batch_size,
                                          tasks=self.tasks)
        self._initial: Programs | None = None
        initial_algorithms = []
        if spec.initial_population != "RANDOM_ALGORITHM":
            initial = generator_lib.hardcoded_algorithm(spec.initial_population, *spec.size_inits)
            validate_addresses(initial, memory.num_scalars, memory.num_vectors,
                               memory.num_matrices)
            self._initial = Programs.from_algorithms([initial])
            initial_algorithms = [initial]
        self.op_sets = evaluator_lib.used_op_sets(initial_algorithms, extra=spec.op_lists)
        self.evaluator = backend_lib.make_evaluator(
            self.backend, self.tasks, memory=memory, max_abs_error=float(spec.max_abs_error),
            op_sets=self.op_sets, options=self.evaluator_options, evaluate_fn=evaluate_fn,
            pad_to=self.child_batch_size * len(self.tasks))
        self.max_train_steps = int(spec.max_train_steps)
        self.reset()

    # -- state ----------------------------------------------------------------------

    def reset(self) -> None:
        """Starts from scratch (empty population, cache and counters)."""
        P = int(self.spec.population_size)
        length = max(max(self.spec.size_inits),
                     self._initial.length if self._initial is not None else 0) + 1
        self.programs = Programs.zeros(P, length)
        self.fitness = np.zeros(P, dtype=np.float64)
        self.stage_fitness = np.full(P, np.nan)  # first-stage fitness (hurdles), NaN unknown
        self.fully_evaluated = np.zeros(P, dtype=bool)  # False: failed a hurdle (or empty)
        self.birth = np.full(P, -1, dtype=np.int64)  # individual number of each slot
        self.next_slot = 0
        self.initialized = False
        self.num_individuals = 0
        self.elapsed_before = 0.0
        self._start_time = time.monotonic()
        self.last_printed: int | None = None
        self.evaluation.reset()
        self._best: tuple[Programs, float] | None = None

    @property
    def elapsed_secs(self) -> float:
        return self.elapsed_before + (time.monotonic() - self._start_time)

    @property
    def done(self) -> bool:
        """True once the train-step budget is used up at a sweep boundary."""
        return (self.initialized and self.next_slot == 0
                and self.train_steps >= self.max_train_steps)

    # -- individuals (the edges: Algorithm objects) -------------------------------------

    @property
    def population_size(self) -> int:
        return len(self.fitness)

    @property
    def population(self) -> list[Algorithm | None]:
        """Every slot as an :class:`Algorithm` (None where nothing was evaluated yet)."""
        return [self.programs.algorithm(s) if self.birth[s] >= 0 else None
                for s in range(self.population_size)]

    def algorithms(self, slots) -> list[Algorithm]:
        """The algorithms in ``slots`` (a sequence of slot indices)."""
        return self.programs.algorithms(slots)

    @property
    def best_ever_programs(self) -> tuple[Programs, float] | None:
        """:attr:`best_ever` as a one-row tensor batch (what a checkpoint stores)."""
        return self._best

    def restore_best_ever(self, programs: Programs, fitness: float) -> None:
        self._best = (programs, float(fitness))

    @property
    def best_ever(self) -> tuple[Algorithm, float] | None:
        """The fittest individual ever evaluated and its fitness."""
        if self._best is None:
            return None
        return self._best[0].algorithm(0), self._best[1]

    def _note_best(self, programs: Programs, fitness: np.ndarray) -> None:
        """Keeps the fittest of ``programs`` if it beats the best so far (``-inf`` marks
        individuals that do not count)."""
        if not len(fitness):
            return
        best = int(np.argmax(fitness))
        if fitness[best] == -np.inf:
            return
        if self._best is None or fitness[best] > self._best[1]:
            self._best = (programs.take([best]), float(fitness[best]))

    def replace_individuals(self, slots, algorithms, fitness, births,
                            stage_fitness=None, failed=None) -> None:
        """Puts ``algorithms`` (Programs or Algorithms) with their ``fitness`` and
        ``births`` into ``slots`` in place.

        Ages and the cyclic replacement order are untouched: an individual put into a
        slot dies when that slot's turn comes, as the one it replaced would have.
        """
        programs = as_programs(algorithms)
        slots = np.asarray(slots, dtype=np.int64)
        fitness = np.asarray(fitness, dtype=np.float64)
        self.programs.put(slots, programs)
        self.fitness[slots] = fitness
        self.birth[slots] = np.asarray(births, dtype=np.int64)
        self.stage_fitness[slots] = np.nan if stage_fitness is None else stage_fitness
        full = np.ones(len(slots), dtype=bool) if failed is None else ~np.asarray(failed)
        self.fully_evaluated[slots] = full
        self._note_best(programs, np.where(full, fitness, -np.inf))

    # -- proposing children -----------------------------------------------------------

    def initial_programs(self, ids: np.ndarray) -> Programs:
        if self._initial is not None:
            return self._initial.take(np.zeros(len(ids), dtype=np.int64))
        return self.mutator.random_programs(ids, self.seed, self.spec.size_inits)

    def propose(self, ids: np.ndarray) -> Programs:
        """Children of the current population (mutants or random algorithms), one per id."""
        if self.random_search:
            return self.mutator.random_programs(ids, self.seed, self.spec.size_inits)
        return self.mutator.mutants(self.programs, self.fitness, ids, self.seed,
                                    int(self.spec.tournament_size))

    # -- evaluation ---------------------------------------------------------------------

    def evaluate_requests(self, children, ids: np.ndarray, use_hurdle: bool
                          ) -> Generator[EvalRequest, PairResults, np.ndarray]:
        """Evaluates children for this population (a request generator; see
        :meth:`SearchEvaluator.evaluate_requests`); returns their fitnesses."""
        return (yield from self.evaluation.evaluate_requests(
            children, ids, use_hurdle,
            PopulationFitness(self.fitness, self.stage_fitness, self.fully_evaluated)))

    def run_request(self, request: EvalRequest) -> PairResults:
        """Runs one request with this search's evaluator (:mod:`azero_jax.backends.backend`); the
        hook a subclass overrides to observe or replace evaluation."""
        return self.evaluator.run(
            request.algorithms, request.algorithm_index, request.task_index,
            train_steps=request.train_steps, seed=request.seed,
            algorithm_ids=request.algorithm_ids, valid_steps=request.valid_steps,
            record_errors=request.record_errors)

    def _drive(self, gen):
        try:
            request = next(gen)
            while True:
                request = gen.send(self.run_request(request))
        except StopIteration as stop:
            return stop.value

    # -- steps ----------------------------------------------------------------------------

    def step_requests(self) -> Generator[EvalRequest, PairResults, int]:
        """One step as a generator of evaluation requests; returns the children made."""
        P = self.population_size
        n = min(self.child_batch_size, P - self.next_slot)
        first_id = self.num_individuals
        ids = np.arange(first_id, first_id + n, dtype=np.int64)
        children = self.initial_programs(ids) if not self.initialized else self.propose(ids)
        fitness = yield from self.evaluate_requests(children, ids, use_hurdle=self.initialized)
        slots = np.arange(self.next_slot, self.next_slot + n)
        evaluation = self.evaluation
        self.replace_individuals(slots, children, fitness, ids,
                                 stage_fitness=evaluation.last_stage_fitness,
                                 failed=evaluation.last_failed)
        self.num_individuals += n
        self.next_slot = (self.next_slot + n) % P
        if self.next_slot == 0:
            self.initialized = True
            self.maybe_report()
        return n

    def step(self) -> int:
        """Makes and evaluates one batch of children; returns how many."""
        return self._drive(self.step_requests())

    def maybe_report(self, force: bool = False) -> None:
        every = int(self.spec.progress_every)
        if force or self.last_printed is None or self.num_individuals >= self.last_printed + every:
            self.last_printed = self.num_individuals
            if self.progress_fn is not None:
                self.progress_fn(self.progress_record())

    def run(self, max_individuals: int | None = None, should_stop: Callable[[], bool] | None = None,
            on_step: Callable[["Search"], None] | None = None,
            max_train_steps: int | None = None) -> Candidate:
        """Runs until the train-step budget (checked between sweeps) is used up.

        The budget counts every training step since the start, the initial population's
        and the FEC fingerprints' included (the reference's accounting).

        Args:
          max_train_steps: a new total budget (default: the spec's ``max_train_steps``).
          max_individuals: also stop (at a sweep boundary) once this many were evaluated.
          should_stop: polled after every step; stop early when it returns True.
          on_step: called after every step (e.g. periodic checkpoints).
        """
        if max_train_steps is not None:
            self.max_train_steps = int(max_train_steps)
        while not self.done:
            if (max_individuals is not None and self.initialized and self.next_slot == 0
                    and self.num_individuals >= max_individuals):
                break
            self.step()
            if on_step is not None:
                on_step(self)
            if should_stop is not None and should_stop():
                break
        return self.candidate()

    # -- results ---------------------------------------------------------------------------

    def candidate(self) -> Candidate:
        """The best individual of the population (lowest slot on ties), as the reference;
        with hurdles, the best of those fully evaluated."""
        if self.random_search and self._best is not None:
            algorithm, fitness = self.best_ever
        else:
            count = self.population_size if self.initialized else self.next_slot
            if count == 0:
                raise ValueError("no individual has been evaluated yet")
            # A child that failed a hurdle holds a first-stage fitness, measured on fewer
            # tasks or examples: it is no candidate while a fully evaluated one exists.
            fitness = np.where(self.fully_evaluated[:count], self.fitness[:count], -np.inf)
            if not self.fully_evaluated[:count].any():
                fitness = self.fitness[:count]
            best = int(np.argmax(fitness))
            algorithm, fitness = self.programs.algorithm(best), float(self.fitness[best])
        return Candidate(algorithm, fitness, self.num_individuals, self.train_steps,
                         self.elapsed_secs)

    def fec_hit_rate(self) -> float:
        return self.evaluation.fec_hit_rate()

    def budget_steps(self, children: Programs) -> np.ndarray:
        return self.evaluation.budget_steps(children)

    def progress_record(self) -> dict:
        """The figures of a progress line (also written to the metrics log)."""
        count = self.population_size if self.initialized else max(self.next_slot, 1)
        f = self.fitness[:count]
        mean = float(f.mean())
        stdev = math.sqrt(max(0.0, float((f * f).mean()) - mean * mean))
        elapsed = self.elapsed_secs
        hurdles = self.spec.hurdles
        known = self.stage_fitness[:count][~np.isnan(self.stage_fitness[:count])]
        return {
            "individuals": int(self.num_individuals),
            "elapsed_secs": float(elapsed),
            "train_steps": int(self.train_steps),
            "mean_fitness": mean,
            "stdev_fitness": stdev,
            "best_fitness": float(f.max()),
            "fec_hit_rate": self.fec_hit_rate(),
            "hurdle": (hurdle_value(known, hurdles.percentile)
                       if hurdles is not None and len(known) else None),
            "individuals_per_sec": self.num_individuals / elapsed if elapsed > 0 else 0.0,
            "train_steps_per_sec": self.train_steps / elapsed if elapsed > 0 else 0.0,
        }

    # -- checkpointing -----------------------------------------------------------------------

    def state_dict(self) -> tuple[dict, dict]:
        """``(json_state, arrays)``: everything needed to resume exactly (see checkpoint)."""
        from azero_jax.evolution import checkpoint as checkpoint_lib
        return checkpoint_lib.search_state(self)

    def load_state_dict(self, state: dict, arrays) -> None:
        from azero_jax.evolution import checkpoint as checkpoint_lib
        checkpoint_lib.load_search_state(self, state, arrays)


def _evaluation_attribute(name: str, doc: str) -> property:
    return property(lambda search: getattr(search.evaluation, name),
                    lambda search, value: setattr(search.evaluation, name, value), doc=doc)


# The evaluation's state, read (and restored by checkpoints) through the search as before.
for _name, _doc in (
        ("train_steps", "Training steps run so far (full, stage and FEC probe runs)."),
        ("fec", "The FEC cache (None without FEC)."),
        ("fec_saved_train_steps", "Training steps the FEC cache saved."),
        ("fec_probe_train_steps", "Training steps of FEC fingerprint runs."),
        ("budget_rejections", "(child, task) pairs the train budget rejected."),
        ("hurdle_stats", "Hurdle counters (:class:`~azero_jax.evolution.hurdles.HurdleStats`)."),
        ("stage_memo", "Recent first-stage fitnesses (hurdles)."),
        ("budget", "The train budget (None without one)."),
        ("eval_seed", "The seed of full and stage evaluations."),
        ("last_stage_fitness", "The last evaluated children's first-stage fitnesses."),
        ("last_failed", "Which of the last evaluated children failed the hurdle.")):
    setattr(Search, _name, _evaluation_attribute(_name, _doc))


def search(spec: SearchSpec, *, memory: MemoryConfig, seed: int = 1, **options) -> Candidate:
    """Runs one regularized-evolution experiment and returns its candidate.

    Example:
        >>> import azero_jax as az
        >>> from azero_jax.spec.search_spec import parse_search_experiment_spec
        >>> spec = parse_search_experiment_spec(open("azero_jax/specs/linear_search.textproto").read())
        >>> result = search(spec.replace(population_size=10, max_train_steps=10000),
        ...                 memory=az.MemoryConfig(4, 3, 1), seed=3, backend="cpu")
        >>> 0.0 <= result.fitness <= 1.0
        True
    """
    return Search(spec, memory=memory, seed=seed, **options).run()
