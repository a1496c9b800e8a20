"""Regularized evolution (spec §6.7) over instruction tensors, with FEC, train budget and hurdles.

The controller runs on the host, on whole batches: a population is a
:class:`~azero_jax.population.Programs` tensor with fitness and birth arrays, and one
step makes ``B`` children (``child_batch_size``) with a handful of compiled calls:

1. ``B`` tournaments over the current population (``tournament_size`` draws with
   replacement; strictly highest fitness wins, ties to the earliest drawn);
2. the parents' rows copied and one mutation each (:mod:`azero_jax.batch_mutator`);
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

The evaluation itself is a generator of :class:`EvalRequest` objects
(:meth:`Search.step_requests`), so a driver can merge the requests of many islands into
one device call; :meth:`Search.step` drives it with the local evaluator.

Example:
    >>> from azero_jax import spec as spec_lib
    >>> from azero_jax.memory import MemoryConfig
    >>> from azero_jax.evolution import Search
    >>> s = spec_lib.parse_search_experiment_spec(open("experiments/specs/linear_search.textproto").read())
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

from azero_jax import allocator
from azero_jax import backend as backend_lib
from azero_jax import evaluator as evaluator_lib
from azero_jax import generator as generator_lib
from azero_jax.batch_mutator import BatchMutator
from azero_jax.evaluator import combine_fitnesses
from azero_jax.memory import MemoryConfig
from azero_jax.results import PairResults
from azero_jax.fec import FEC_SEED, FECCache, LRUTable, hash_row_arrays
from azero_jax.hurdles import HurdleStats, hurdle_value, stage_tasks, stage_train_examples
from azero_jax.population import ProgramRows, Programs, as_programs
from azero_jax.program import Algorithm, validate_addresses
from azero_jax.spec import SearchSpec
from azero_jax.tasks import Task, make_tasks
from azero_jax.train_budget import TrainBudget


# cpu backend threads per search (see Search.__init__).
SEARCH_THREADS = 1


def _k():
    """The compiled search kernels, imported on first use (``import azero_jax`` stays light)."""
    from azero_jax import _search_kernels
    return _search_kernels


def default_child_batch_size(population_size: int, backend: str) -> int:
    """At most a tenth of the population (regularized evolution stays steady-state);
    large device batches come from many islands evaluated together."""
    cap = 1024 if backend in ("jax", "cuda") else 256  # device backends take larger steps
    return max(1, min(population_size // 10, cap))


def _subset(programs: Programs, rows: np.ndarray) -> Programs | ProgramRows:
    """The batch itself when ``rows`` are all of it in order, otherwise the rows by
    reference (the cpu backend reads them in place; a copy cost ~0.1 us a child)."""
    if len(rows) == len(programs) and (not len(rows) or rows[-1] == len(rows) - 1):
        return programs  # rows are distinct and increasing: they are 0..n-1
    return ProgramRows(programs, rows)


def _key_halves(keys_hi: np.ndarray, keys_lo: np.ndarray, n: int, T: int) -> np.ndarray:
    """``[n, 2T]`` uint64 words: the T pair keys of each child, for a per-child key."""
    return np.stack([keys_hi.reshape(n, T), keys_lo.reshape(n, T)], axis=2).reshape(n, 2 * T)


@dataclasses.dataclass
class EvalRequest:
    """One batched evaluation a step needs (arguments of ``evaluate_pairs``).

    ``kind`` is ``"probe"`` (FEC fingerprints), ``"stage"`` (hurdle first stage) or
    ``"full"``. ``algorithms`` is a :class:`~azero_jax.population.Programs` batch; task
    indices refer to :attr:`Search.tasks`.
    """

    kind: str
    algorithms: Programs
    algorithm_index: np.ndarray
    task_index: np.ndarray
    train_steps: np.ndarray
    seed: int
    algorithm_ids: np.ndarray
    valid_steps: int | None = None
    record_errors: tuple[int, int] | None = None

    def __len__(self):
        return len(self.algorithm_index)


@dataclasses.dataclass
class Candidate:
    """The result of a search: the final candidate and some statistics."""

    algorithm: Algorithm
    fitness: float
    num_individuals: int
    train_steps: int
    elapsed_secs: float


class _ProbeMemo:
    """Recent programs' fingerprint words (hashed, without the budget) and probe steps.

    Probes are deterministic, so an exact program seen recently (an unmutated child, a
    copy) reuses its probe; the probe's training steps are still counted, as the
    reference counts every fingerprint run.
    """

    def __init__(self, capacity: int, num_tasks: int):
        self.table = LRUTable(capacity)
        self.hi = np.zeros((capacity + 1, num_tasks), dtype=np.uint64)
        self.lo = np.zeros((capacity + 1, num_tasks), dtype=np.uint64)
        self.steps = np.zeros(capacity + 1, dtype=np.int64)


class _StageMemo:
    """First-stage (hurdle) fitnesses of recent equivalent children, in LRU order (keyed
    by their fingerprints, or by their program without FEC)."""

    def __init__(self, capacity: int):
        self.table = LRUTable(capacity)
        self.values = np.zeros(capacity + 1, dtype=np.float64)

    def find(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """Each key's stage fitness (refreshed), NaN where absent."""
        entries = self.table.find(hi, lo, refresh=True)
        return np.where(entries >= 0, self.values[np.maximum(entries, 0)], np.nan)

    def insert(self, hi: np.ndarray, lo: np.ndarray, values: np.ndarray) -> None:
        entries = self.table.insert(hi, lo)
        kept = entries >= 0
        self.values[entries[kept]] = np.asarray(values)[kept]

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The entries from least to most recent (a checkpoint's arrays)."""
        order = self.table.order()
        return {"hurdle_memo_key_hi": self.table.key_hi[order].copy(),
                "hurdle_memo_key_lo": self.table.key_lo[order].copy(),
                "hurdle_memo_values": self.values[order].copy()}

    def load_arrays(self, arrays) -> None:
        self.insert(arrays["hurdle_memo_key_hi"], arrays["hurdle_memo_key_lo"],
                    arrays["hurdle_memo_values"])


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
        receives :class:`~azero_jax.program.Algorithm` lists.
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
        self.budget = None
        if spec.train_budget is not None:
            baseline = generator_lib.hardcoded_algorithm(spec.train_budget.baseline,
                                                         *spec.size_inits)
            self.budget = TrainBudget(baseline, spec.train_budget.threshold_factor)
        if spec.fec is not None:
            for task in self.tasks:
                if spec.fec.num_train_examples > task.total_train_steps or \
                        spec.fec.num_valid_examples > task.num_valid:
                    raise ValueError(f"fec asks for {spec.fec.num_train_examples} train / "
                                     f"{spec.fec.num_valid_examples} valid examples but task "
                                     f"{task.index} has {task.total_train_steps} / {task.num_valid}")
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
        self._full_steps = np.array([t.total_train_steps for t in self.tasks], dtype=np.int64)
        self._task_ids = np.array([t.index for t in self.tasks], dtype=np.int64)
        self.max_train_steps = int(spec.max_train_steps)
        self._constant_rows: dict[str, np.ndarray] = {}
        self.eval_seed = (self.seed * 2654435761 + 12345) % (2**31 - 1)
        hurdles = spec.hurdles
        T = len(self.tasks)
        if hurdles is not None:
            self._stage_tasks = stage_tasks(hurdles, T)
            self._stage_steps = stage_train_examples(hurdles, self._full_steps)
            # A stage with every training example is the start of the full evaluation.
            self._stage_is_prefix = bool((self._stage_steps >= self._full_steps).all())
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
        self.train_steps = 0
        self.elapsed_before = 0.0
        self._start_time = time.monotonic()
        self.last_printed: int | None = None
        self.fec = (FECCache(self.spec.fec.cache_size, self.spec.fec.forget_every)
                    if self.spec.fec is not None else None)
        self.fec_saved_train_steps = 0
        memo_size = 2 * max(P, self.child_batch_size)
        self._probe_memo = (_ProbeMemo(memo_size, len(self.tasks))
                            if self.spec.fec is not None else None)
        self.fec_probe_train_steps = 0
        self.hurdle_stats = HurdleStats()
        # Stage fitness of recent equivalent children (same fingerprints, or same program).
        self.stage_memo = _StageMemo(memo_size)
        self.budget_rejections = 0
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

    def _rows(self, name: str, n: int, make: Callable[[int], np.ndarray]) -> np.ndarray:
        """The first ``n`` rows of a constant array ``make(m)`` (kept, read-only, for the
        largest ``m`` asked so far): steps rebuild the same index arrays every time."""
        kept = self._constant_rows.get(name)
        if kept is None or len(kept) < n:
            kept = make(max(n, self.child_batch_size))
            kept.flags.writeable = False
            self._constant_rows[name] = kept
        return kept[:n]

    def budget_steps(self, children: Programs) -> np.ndarray:
        """``[n, T]`` budgeted training steps of each (child, task)."""
        n = len(children)
        if self.budget is None:
            return self._rows("full_steps", n, lambda m: np.tile(self._full_steps, (m, 1)))
        costs = children.costs()
        return self.budget.budget_steps(costs[:, 0], costs[:, 1] + costs[:, 2], self._full_steps)

    def evaluate_requests(self, children, ids: np.ndarray, use_hurdle: bool
                          ) -> Generator[EvalRequest, PairResults, np.ndarray]:
        """Evaluates children; yields :class:`EvalRequest` objects, returns their fitnesses.

        ``children`` is a :class:`~azero_jax.population.Programs` batch (or a list of
        Algorithms). After the call, :attr:`last_stage_fitness` holds each child's
        first-stage fitness (NaN where unknown).
        """
        children = as_programs(children)
        n, T = len(children), len(self.tasks)
        ids = np.asarray(ids, dtype=np.int64)
        mode = self.spec.fitness_combination_mode
        budget = self.budget_steps(children)
        flat_budget = budget.ravel()
        if self.budget is not None:  # full budgets are never 0 (tasks have >= 10 steps)
            self.budget_rejections += int(np.count_nonzero(flat_budget == 0))
        per_task = np.zeros((n, T), dtype=np.float64)
        flat = per_task.ravel()
        miss = np.ones(n * T, dtype=bool)  # not answered by the cache
        fec = self.fec
        keys_hi = keys_lo = None
        if fec is not None:
            keys_hi, keys_lo = yield from self._fingerprints(children, budget)
            misses, saved = _k().fec_lookup_pairs(*fec.arrays(), keys_hi, keys_lo,
                                                  fec.forget_every, flat, miss, flat_budget)
            self.fec_saved_train_steps += int(saved)
            fec.misses += int(misses)
        stage_fitness = np.full(n, np.nan)
        failed = np.zeros(n, dtype=bool)
        hurdles = self.spec.hurdles
        k = self._stage_tasks if hurdles is not None else 0
        pending = miss.copy()  # pairs still to be answered
        if hurdles is not None and self._stage_is_prefix:
            # The stage is the full evaluation of the first k tasks: run it, judge, then
            # evaluate the remaining tasks of the children that pass.
            task_of = np.tile(np.arange(T), n)
            first = pending & (task_of < k)
            yield from self._full_pairs(children, ids, first, budget, keys_hi, keys_lo, flat)
            pending &= ~first
            stage_fitness = np.asarray(combine_fitnesses(per_task[:, :k], mode), np.float64)
            stage_fitness = stage_fitness.reshape(n)
            if use_hurdle:
                staged = np.flatnonzero(pending.reshape(n, T).any(axis=1))
                failed[staged] = self._judge(stage_fitness[staged], budget, pending, staged)
                pending &= ~np.repeat(failed, T)
        elif hurdles is not None and use_hurdle:
            staged = np.flatnonzero((pending & (flat_budget > 0)).reshape(n, T).any(axis=1))
            if len(staged):
                stage_fitness[staged] = yield from self._stage(children, ids, staged, budget,
                                                               keys_hi, keys_lo)
                failed[staged] = self._judge(stage_fitness[staged], budget, pending, staged)
                pending &= ~np.repeat(failed, T)
        yield from self._full_pairs(children, ids, pending, budget, keys_hi, keys_lo, flat)
        fitness = (np.asarray(combine_fitnesses(per_task, mode), np.float64).reshape(n)
                   if T else np.zeros(n))
        # A failed child keeps its first-stage fitness, but never above the population's
        # lowest full fitness: a partial measurement must not outrank full ones (the few
        # tasks of a stage are noisy, and selection would favour the lucky failures).
        if failed.any():
            full = self.fitness[self.fully_evaluated]
            floor = full.min() if len(full) else np.inf
            fitness[failed] = np.minimum(stage_fitness[failed], floor)
        self.last_stage_fitness = stage_fitness
        self.last_failed = failed
        return fitness

    def _judge(self, stage_fit: np.ndarray, budget, pending, staged) -> np.ndarray:
        """Which staged children fail the hurdle (counted in the stats)."""
        known = self.stage_fitness[~np.isnan(self.stage_fitness)]
        stats = self.hurdle_stats
        stats.evaluated += len(staged)
        if not len(known):  # no first-stage fitness yet: nothing to judge against
            stats.passed += len(staged)
            return np.zeros(len(staged), dtype=bool)
        threshold = hurdle_value(known, self.spec.hurdles.percentile)
        fails = stage_fit < threshold
        stats.failed += int(fails.sum())
        stats.passed += int((~fails).sum())
        T = len(self.tasks)
        rows = staged[fails]
        saved = (budget[rows] * pending.reshape(-1, T)[rows]).sum()
        stats.saved_train_steps += int(saved)
        return fails

    def _stage(self, children: Programs, ids, staged, budget, keys_hi, keys_lo):
        """First-stage fitness of the staged children (fewer training examples on the
        first k tasks); equivalent children seen recently reuse theirs."""
        n, T = len(children), len(self.tasks)
        k = self._stage_tasks
        stats = self.hurdle_stats
        if keys_hi is not None:  # equivalent children (same fingerprints) share a stage
            words = _key_halves(keys_hi, keys_lo, n, T)[staged]
            memo_hi, memo_lo = hash_row_arrays(words)
        else:
            memo_hi, memo_lo = children.take(staged).keys()
        result = self.stage_memo.find(memo_hi, memo_lo)
        todo = np.flatnonzero(np.isnan(result))
        stats.memo_hits += len(staged) - len(todo)
        if len(todo):
            run = staged[todo]
            steps = budget[run][:, :k]
            steps = np.minimum(steps, self._stage_steps[:k])
            stage = yield EvalRequest(
                "stage", _subset(children, run), np.repeat(np.arange(len(run)), k),
                np.tile(np.arange(k), len(run)), steps.ravel(), self.eval_seed, ids[run])
            spent = int(np.sum(stage.train_steps))
            self.train_steps += spent
            stats.stage_train_steps += spent
            values = np.asarray(combine_fitnesses(
                np.asarray(stage.fitness, np.float64).reshape(len(run), k),
                self.spec.fitness_combination_mode), np.float64).reshape(len(run))
            result[todo] = values
            self.stage_memo.insert(memo_hi[todo], memo_lo[todo], values)
        return result

    def _full_pairs(self, children: Programs, ids, pairs: np.ndarray, budget, keys_hi, keys_lo,
                    per_task: np.ndarray):
        """Full evaluations of the flagged pairs into ``per_task`` (flat ``[n * T]``; a
        request generator). With FEC, a fingerprint repeated among them is evaluated once
        and its later sightings are cache hits."""
        n, T = len(children), len(self.tasks)
        flat_budget = budget.ravel()
        fec = self.fec
        owner = np.empty(n * T, dtype=np.int64)
        run = np.empty(n * T, dtype=np.int64)
        deferred = np.empty(n * T, dtype=np.int64)
        used = np.empty(n, dtype=np.int64)
        remap = np.empty(n * T, dtype=np.int64)
        if keys_hi is None:  # no FEC: no keys
            keys_hi = keys_lo = np.zeros(0, dtype=np.uint64)
        n_run, n_def, n_used = _k().full_plan(keys_hi, keys_lo, pairs, flat_budget, T,
                                              fec is not None, owner, run, deferred, used, remap)
        if n_run:
            run, used = run[:n_run], used[:n_used]
            full = yield EvalRequest(
                "full", _subset(children, used), remap[:n_run], run % T, flat_budget[run],
                self.eval_seed, ids[used])
            self.train_steps += int(np.sum(full.train_steps))
            per_task[run] = np.asarray(full.fitness, dtype=np.float64)
        if fec is not None and pairs.any():
            deferred = deferred[:n_def]
            unanswered = _k().full_finish(*fec.arrays(), fec.forget_every, keys_hi, keys_lo,
                                          pairs, owner, deferred, n_def, per_task)
            # Deferred pairs were counted as misses at lookup; they are hits (an entry
            # forgotten by an earlier sighting still answers from this step).
            fec.hits += int(unanswered)
            fec.misses -= n_def
            self.fec_saved_train_steps += int(flat_budget[deferred].sum())

    def _fingerprints(self, children: Programs, budget
                      ) -> Generator[EvalRequest, PairResults, tuple[np.ndarray, np.ndarray]]:
        """FEC keys ``(hi, lo)`` of every (child, task) pair, probing only programs not
        probed recently."""
        n, T = len(children), len(self.tasks)
        fec = self.spec.fec
        memo = self._probe_memo
        prog_hi, prog_lo = children.keys()
        part_hi = np.empty((n, T), dtype=np.uint64)
        part_lo = np.empty((n, T), dtype=np.uint64)
        probe_steps = np.empty(n, dtype=np.int64)
        owner = np.empty(n, dtype=np.int64)
        unique = np.empty(n, dtype=np.int64)
        table = memo.table.arrays()
        m = _k().probe_plan(prog_hi, prog_lo, table[0], table[1], table[3], memo.hi, memo.lo,
                            memo.steps, part_hi, part_lo, probe_steps, owner, unique)
        unique = unique[:m]
        if m:
            probe = yield EvalRequest(
                "probe", _subset(children, unique),
                self._rows("child_of_pair", m, lambda k: np.repeat(np.arange(k), T)
                           .reshape(k, T)).ravel(),
                self._rows("task_of_pair", m, lambda k: np.tile(np.arange(T), (k, 1))).ravel(),
                self._rows("probe_steps", m, lambda k: np.full((k, T), fec.num_train_examples,
                                                               dtype=np.int64)).ravel(),
                FEC_SEED, np.zeros(m, dtype=np.int64), valid_steps=int(fec.num_valid_examples),
                record_errors=(int(fec.num_train_examples), int(fec.num_valid_examples)))
            errors = (np.ascontiguousarray(probe.train_errors, dtype=np.float64),
                      np.ascontiguousarray(probe.num_train_errors, dtype=np.int64),
                      np.ascontiguousarray(probe.valid_errors, dtype=np.float64),
                      np.ascontiguousarray(probe.num_valid_errors, dtype=np.int64))
            pair_steps = np.ascontiguousarray(probe.train_steps, dtype=np.int64)
        else:  # every program was in the memo
            errors = (np.zeros((0, 1)), np.zeros(0, np.int64), np.zeros((0, 1)),
                      np.zeros(0, np.int64))
            pair_steps = np.zeros(0, dtype=np.int64)
        keys_hi = np.empty(n * T, dtype=np.uint64)
        keys_lo = np.empty(n * T, dtype=np.uint64)
        task_ids = self._rows("task_ids", m, lambda k: np.tile(self._task_ids, (k, 1))).ravel()
        total = _k().probe_finish(*errors, task_ids, pair_steps, unique, m,
                                  owner, *table, memo.hi, memo.lo, memo.steps, prog_hi,
                                  prog_lo, part_hi, part_lo, probe_steps,
                                  budget.ravel(), words_per_fingerprint(fec),
                                  keys_hi, keys_lo)
        self.train_steps += int(total)
        self.fec_probe_train_steps += int(total)
        return keys_hi, keys_lo

    def run_request(self, request: EvalRequest) -> PairResults:
        """Runs one request with this search's evaluator (:mod:`azero_jax.backend`); the
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
        self.replace_individuals(slots, children, fitness, ids,
                                 stage_fitness=self.last_stage_fitness, failed=self.last_failed)
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
        if self.fec is None:
            return 0.0
        total = self.fec.hits + self.fec.misses
        return self.fec.hits / total if total else 0.0

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
        from azero_jax import checkpoint as checkpoint_lib
        return checkpoint_lib.search_state(self)

    def load_state_dict(self, state: dict, arrays) -> None:
        from azero_jax import checkpoint as checkpoint_lib
        checkpoint_lib.load_search_state(self, state, arrays)


def words_per_fingerprint(fec) -> int:
    """Words hashed per fingerprint before the budget word (see
    :func:`azero_jax.fec.fingerprint_words`)."""
    return int(fec.num_train_examples) + int(fec.num_valid_examples) + 3


def search(spec: SearchSpec, *, memory: MemoryConfig, seed: int = 1, **options) -> Candidate:
    """Runs one regularized-evolution experiment and returns its candidate.

    Example:
        >>> import azero_jax as az
        >>> from azero_jax.spec import parse_search_experiment_spec
        >>> spec = parse_search_experiment_spec(open("experiments/specs/linear_search.textproto").read())
        >>> result = search(spec.replace(population_size=10, max_train_steps=10000),
        ...                 memory=az.MemoryConfig(4, 3, 1), seed=3, backend="cpu")
        >>> 0.0 <= result.fitness <= 1.0
        True
    """
    return Search(spec, memory=memory, seed=seed, **options).run()
