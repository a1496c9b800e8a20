"""Regularized evolution (spec §6.7) with batched children, FEC, train budget and hurdles.

The controller runs on the host; every evaluation is a batched call of the evaluator.
One :class:`Search` holds all the state of one population (an "island"): the
population, fitnesses, birth numbers, the controller RNG, the FEC cache and the
counters. It checkpoints exactly (:meth:`Search.state_dict`) and islands can hold many.

One step makes ``B`` children (``child_batch_size``):

1. ``B`` tournaments over the current population (``tournament_size`` draws with
   replacement; strictly highest fitness wins, ties to the earliest drawn);
2. ``B`` mutations on the host (:class:`~azero_jax.mutator.Mutator`; microseconds each);
3. the train budget per (child, task) (§8);
4. with FEC: one batched probe of all ``B x T`` pairs (short run, fixed seed, errors
   recorded), hashed on the host; cache hits take the cached fitness (§7);
5. with hurdles: a batched cheap first stage for children with misses; those below the
   rolling hurdle keep their first-stage fitness (paper S3);
6. one batched full evaluation of the remaining misses;
7. the children replace the ``B`` oldest individuals (cyclic slots).

With ``B = 1`` this is the reference's loop (one detail differs: the reference inserts
a child's task-0 result into the cache before looking up its task-1 fingerprint, so at
full cache capacity its eviction order can differ). With ``B > 1`` the ``B`` tournaments
of a step see the population as it was before the step; a fingerprint repeated within a
step is evaluated once and its later sightings are cache hits, as they would be in
sequence (if ``forget_every`` erases the entry within the step, the later sightings
still reuse the step's result). Steps never cross a sweep boundary, so the train-step
budget is checked between sweeps of ``P`` children, as in the reference (the initial
population and every FEC fingerprint run count).

Evaluation seeds: full and hurdle evaluations use a seed derived from the search seed
and each child's individual number as its algorithm id (so children with random ops
draw different numbers); FEC probes use the reference's fixed seed 235732282 and id 0
(fingerprints are deterministic, so a probe is memoised per exact program).

``random_search=True`` replaces step 1-2 with fresh random algorithms of the spec's
initial sizes (the paper's random-search baseline), with the same accounting.

The evaluation itself is a generator of :class:`EvalRequest` objects
(:meth:`Search.step_requests`), so a driver can merge the requests of many islands into
one device call; :meth:`Search.step` drives it with the local evaluator.

Example:
    >>> from azero_jax import spec as spec_lib
    >>> from azero_jax.evaluator import MemoryConfig
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
import hashlib
import math
import random as random_lib
import time
from typing import Callable, Generator, Sequence

import numpy as np

from azero_jax import evaluator as evaluator_lib
from azero_jax import generator as generator_lib
from azero_jax.evaluator import MemoryConfig, PairResults, combine_fitnesses
from azero_jax.fec import FEC_SEED, FECCache, fingerprint_words, hash_rows
from azero_jax.hurdles import HurdleStats, hurdle_value
from azero_jax.mutator import Mutator
from azero_jax.program import Algorithm, validate_addresses
from azero_jax.randomizer import Randomizer
from azero_jax.spec import SearchSpec
from azero_jax.tasks import Task, make_tasks
from azero_jax.train_budget import COSTS, TrainBudget


def _stable_key(data: bytes) -> int:
    """A process-independent 63-bit key (Python's bytes hash is salted per process)."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") >> 1


def default_child_batch_size(population_size: int, backend: str) -> int:
    """A batch that keeps the evaluator busy while staying a small part of a sweep."""
    if backend == "jax":
        return max(1, min(population_size, 1024))
    return max(1, min(population_size // 4, 256))


@dataclasses.dataclass
class EvalRequest:
    """One batched evaluation a step needs (arguments of ``evaluate_pairs``).

    ``kind`` is ``"probe"`` (FEC fingerprints), ``"stage"`` (hurdle first stage) or
    ``"full"``. Task indices refer to :attr:`Search.tasks`.
    """

    kind: str
    algorithms: list
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
      evaluate_fn: an ``evaluate_pairs``-compatible callable (default the library's).
      progress_fn: called with :meth:`progress_record` whenever the reference would print
        a progress line (after the initial population and after sweeps).
      evaluator_options: extra keyword arguments for ``evaluate_fn`` (e.g. ``dtype``).
    """

    def __init__(self, spec: SearchSpec, *, memory: MemoryConfig, seed: int = 1,
                 backend: str = "auto", child_batch_size: int | None = None,
                 random_search: bool = False, tasks: Sequence[Task] | None = None,
                 evaluate_fn: Callable | None = None,
                 progress_fn: Callable[[dict], None] | None = None,
                 evaluator_options: dict | None = None):
        self.spec = spec
        self.memory = memory
        self.seed = int(seed)
        self.backend = evaluator_lib.resolve_backend(backend) if evaluate_fn is None else backend
        self.random_search = bool(random_search)
        self.tasks = list(make_tasks(spec.search_tasks) if tasks is None else tasks)
        self.evaluate_fn = evaluate_fn or evaluator_lib.evaluate_pairs
        self.progress_fn = progress_fn
        self.evaluator_options = dict(evaluator_options or {})
        P = int(spec.population_size)
        self.child_batch_size = int(child_batch_size or default_child_batch_size(P, self.backend))
        if self.child_batch_size < 1:
            raise ValueError(f"child_batch_size must be >= 1, got {child_batch_size}")
        self.mutator = Mutator(spec.op_lists, memory, spec.mutation_types, spec.mutate_prob,
                               spec.size_bounds)
        self.randomizer: Randomizer = self.mutator.randomizer
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
        self._initial = None
        if spec.initial_population != "RANDOM_ALGORITHM":
            self._initial = generator_lib.hardcoded_algorithm(spec.initial_population,
                                                              *spec.size_inits)
            validate_addresses(self._initial, memory.num_scalars, memory.num_vectors,
                               memory.num_matrices)
        self.op_sets = evaluator_lib.used_op_sets(
            [self._initial] if self._initial is not None else [], extra=spec.op_lists)
        self._full_steps = np.array([t.total_train_steps for t in self.tasks], dtype=np.int64)
        self._task_ids = np.array([t.index for t in self.tasks], dtype=np.int64)
        self.max_train_steps = int(spec.max_train_steps)
        self.eval_seed = (self.seed * 2654435761 + 12345) % (2**31 - 1)
        self.reset()

    # -- state ----------------------------------------------------------------------

    def reset(self) -> None:
        """Starts from scratch (empty population, fresh RNG, cache and counters)."""
        P = int(self.spec.population_size)
        self.rng = random_lib.Random(self.seed)
        self.population: list[Algorithm | None] = [None] * P
        self.fitness = np.zeros(P, dtype=np.float64)
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
        self._probe_memo: dict[bytes, tuple] = {}
        self._probe_memo_size = 2 * int(self.spec.population_size)
        self.fec_probe_train_steps = 0
        self.hurdle_stats = HurdleStats()
        self._hurdle_memo: dict[int, float] = {}  # stage fitness of recent equivalent children
        self.budget_rejections = 0
        self.best_ever: tuple[Algorithm, float] | None = None

    @property
    def elapsed_secs(self) -> float:
        return self.elapsed_before + (time.monotonic() - self._start_time)

    @property
    def done(self) -> bool:
        """True once the train-step budget is used up at a sweep boundary."""
        return (self.initialized and self.next_slot == 0
                and self.train_steps >= self.max_train_steps)

    # -- individuals (the interface islands and tools use; the storage may change) -------

    @property
    def population_size(self) -> int:
        return len(self.fitness)

    def algorithms(self, slots) -> list[Algorithm]:
        """The algorithms in ``slots`` (a sequence of slot indices)."""
        return [self.population[int(s)] for s in slots]

    def replace_individuals(self, slots, algorithms: Sequence[Algorithm], fitness,
                            births) -> None:
        """Puts ``algorithms`` with their ``fitness`` and ``births`` into ``slots`` in place.

        Ages and the cyclic replacement order are untouched: an individual put into a
        slot dies when that slot's turn comes, as the one it replaced would have.
        """
        fitness = np.asarray(fitness, dtype=np.float64)
        births = np.asarray(births, dtype=np.int64)
        for j, slot in enumerate(slots):
            slot = int(slot)
            self.population[slot] = algorithms[j]
            self.fitness[slot] = fitness[j]
            self.birth[slot] = births[j]
        if len(fitness):
            best = int(np.argmax(fitness))
            if self.best_ever is None or fitness[best] > self.best_ever[1]:
                self.best_ever = (algorithms[best], float(fitness[best]))

    # -- proposing children -----------------------------------------------------------

    def tournament(self) -> int:
        """Index of a tournament winner (draws with replacement; earliest wins ties)."""
        P = len(self.population)
        rng = self.rng.random
        fitness = self.fitness
        best = int(rng() * P)
        best_fit = fitness[best]
        for _ in range(int(self.spec.tournament_size) - 1):
            i = int(rng() * P)
            if fitness[i] > best_fit:
                best, best_fit = i, fitness[i]
        return best

    def tournaments(self, n: int) -> np.ndarray:
        """``n`` tournament winners at once (the same draws, in order, as ``n`` calls of
        :meth:`tournament`)."""
        P, size = len(self.population), int(self.spec.tournament_size)
        rng = self.rng.random
        draws = np.array([rng() for _ in range(n * size)]).reshape(n, size)
        index = (draws * P).astype(np.int64)
        return index[np.arange(n), np.argmax(self.fitness[index], axis=1)]

    def _initial_algorithm(self) -> Algorithm:
        if self._initial is not None:
            return self.mutator.mutate(self._initial, self.rng, num_mutations=0)
        algorithm = self.randomizer.random_algorithm(self.spec.size_inits, self.rng)
        return self.mutator.mutate(algorithm, self.rng, num_mutations=0)

    def propose(self, n: int) -> list[Algorithm]:
        """``n`` children of the current population (mutants or random algorithms)."""
        if self.random_search:
            return [self.randomizer.random_algorithm(self.spec.size_inits, self.rng)
                    for _ in range(n)]
        population = self.population
        mutate = self.mutator.mutate
        rng = self.rng
        return [mutate(population[i], rng) for i in self.tournaments(n).tolist()]

    # -- evaluation ---------------------------------------------------------------------

    def budget_steps(self, children: Sequence[Algorithm]) -> np.ndarray:
        """``[n, T]`` budgeted training steps of each (child, task)."""
        n, T = len(children), len(self.tasks)
        steps = np.broadcast_to(self._full_steps, (n, T)).copy()
        if self.budget is None:
            return steps
        b = self.budget
        limit = b.threshold_factor * (b.baseline_setup + self._full_steps * b.baseline_train)
        for i, child in enumerate(children):
            setup = int(COSTS[child.setup["op"]].sum())
            train = int(COSTS[child.predict["op"]].sum()) + int(COSTS[child.learn["op"]].sum())
            if train <= 0:
                raise ValueError("an algorithm with empty Predict and Learn has no train cost")
            steps[i, setup + self._full_steps * train > limit] = 0
        return steps

    def evaluate_requests(self, children: Sequence[Algorithm], ids: np.ndarray,
                          use_hurdle: bool) -> Generator[EvalRequest, PairResults, np.ndarray]:
        """Evaluates children; yields :class:`EvalRequest` objects, returns their fitnesses.

        FEC within a batch follows the sequential order of the reference: a fingerprint
        that repeats within the batch is evaluated once, and its later sightings are
        cache hits (counted, and subject to ``forget_every``) on that first result.
        """
        n, T = len(children), len(self.tasks)
        ids = np.asarray(ids, dtype=np.int64)
        mode = self.spec.fitness_combination_mode
        budget = self.budget_steps(children)
        self.budget_rejections += int((budget == 0).sum())
        per_task = np.zeros((n, T), dtype=np.float64)
        miss = np.ones((n, T), dtype=bool)  # not answered by the cache
        keys = None
        pair_child = np.repeat(np.arange(n), T)
        pair_task = np.tile(np.arange(T), n)
        fec = self.fec
        if fec is not None:
            keys = yield from self._fingerprints(children, budget)
            values, found = fec.lookup_present(keys)
            per_task.ravel()[found] = values[found]
            miss.ravel()[found] = False
            self.fec_saved_train_steps += int(budget.ravel()[found].sum())
        failed = np.zeros(n, dtype=bool)
        stage_fitness = np.zeros(n, dtype=np.float64)
        hurdles = self.spec.hurdles
        if use_hurdle and hurdles is not None:
            staged = np.flatnonzero((miss & (budget > 0)).any(axis=1))
            stats = self.hurdle_stats
            memo = self._hurdle_memo
            if keys is not None:  # equivalent children (same fingerprints) share a stage result
                stage_keys = [_stable_key(b"".join(key.to_bytes(16, "little")
                                                   for key in keys[i * T:(i + 1) * T]))
                              for i in staged.tolist()]
            else:
                stage_keys = [_stable_key(children[i].key()) for i in staged.tolist()]
            stage_fit = np.array([memo.get(key, np.nan) for key in stage_keys])
            todo = np.flatnonzero(np.isnan(stage_fit))
            stats.memo_hits += len(staged) - len(todo)
            if len(todo):
                run_children = staged[todo]
                k = min(int(hurdles.num_tasks) or T, T)
                steps = budget[run_children][:, :k]
                if hurdles.num_train_examples:
                    steps = np.minimum(steps, int(hurdles.num_train_examples))
                stage = yield EvalRequest(
                    "stage", [children[i] for i in run_children],
                    np.repeat(np.arange(len(run_children)), k),
                    np.tile(np.arange(k), len(run_children)), steps.ravel(), self.eval_seed,
                    ids[run_children])
                spent = int(np.sum(stage.train_steps))
                self.train_steps += spent
                stats.stage_train_steps += spent
                stage_fit[todo] = combine_fitnesses(
                    np.asarray(stage.fitness).reshape(len(run_children), k), mode)
                for j in todo.tolist():
                    memo[stage_keys[j]] = float(stage_fit[j])
                while len(memo) > self._probe_memo_size:
                    memo.pop(next(iter(memo)))
            stats.evaluated += len(staged)
            threshold = hurdle_value(self.fitness, hurdles.percentile)
            for j, i in enumerate(staged.tolist()):
                if stage_fit[j] >= threshold:
                    stats.passed += 1
                else:
                    stats.failed += 1
                    failed[i] = True
                    stage_fitness[i] = stage_fit[j]
                    stats.saved_train_steps += int(budget[i][miss[i]].sum())
        # Pairs to evaluate: misses of children that did not fail the hurdle; with FEC a
        # fingerprint repeated within the batch is evaluated once (the first sighting).
        open_pairs = np.flatnonzero((miss & ~failed[:, None]).ravel())
        first_of: dict[int, int] = {}
        deferred: list[tuple[int, int]] = []
        if keys is not None:
            if len(failed) and failed.any():
                fec.misses += int((miss & failed[:, None]).sum())
            evaluate = []
            for p in open_pairs.tolist():
                owner = first_of.get(keys[p])
                if owner is None:
                    first_of[keys[p]] = p
                    evaluate.append(p)
                else:
                    deferred.append((p, owner))
            fec.misses += len(evaluate)
            evaluate = np.array(evaluate, dtype=np.int64)
        else:
            evaluate = open_pairs
        run = evaluate[budget.ravel()[evaluate] > 0]  # rejected by the budget: fitness 0
        if len(run):
            child_idx, task_idx = pair_child[run], pair_task[run]
            used = np.unique(child_idx)
            remap = np.full(n, -1, dtype=np.int64)
            remap[used] = np.arange(len(used))
            full = yield EvalRequest(
                "full", [children[i] for i in used], remap[child_idx], task_idx,
                budget.ravel()[run], self.eval_seed, ids[used])
            self.train_steps += int(np.sum(full.train_steps))
            per_task.ravel()[run] = np.asarray(full.fitness, dtype=np.float64)
        if keys is not None:
            flat = per_task.ravel()
            for p in evaluate.tolist():
                fec.insert(keys[p], flat[p])
            flat_budget = budget.ravel()
            for p, owner in deferred:
                cached = fec.lookup(keys[p]) if fec.contains(keys[p]) else None
                flat[p] = flat[owner] if cached is None else cached
                if cached is None:
                    fec.hits += 1  # the entry was forgotten by an earlier sighting
                self.fec_saved_train_steps += int(flat_budget[p])
        fitness = combine_fitnesses(per_task, mode) if T else np.zeros(n)
        fitness = np.asarray(fitness, dtype=np.float64).reshape(n)
        fitness[failed] = stage_fitness[failed]
        return fitness

    def _fingerprints(self, children, budget) -> Generator[EvalRequest, PairResults, list]:
        """FEC keys of every (child, task) pair, probing only algorithms not seen before.

        The probe is deterministic (fixed seed, algorithm id 0), so the probe results of
        an algorithm seen recently (bit-identical, e.g. an unmutated child) are reused
        from a memo; its probe training steps are still counted, as the reference counts
        every fingerprint run.
        """
        n, T = len(children), len(self.tasks)
        fec = self.spec.fec
        memo = self._probe_memo
        algo_keys = [child.key() for child in children]
        todo = [i for i, k in enumerate(algo_keys) if k not in memo]
        todo_unique = list({algo_keys[i]: i for i in todo}.values())
        if todo_unique:
            m = len(todo_unique)
            probe = yield EvalRequest(
                "probe", [children[i] for i in todo_unique], np.repeat(np.arange(m), T),
                np.tile(np.arange(T), m), np.full(m * T, fec.num_train_examples, dtype=np.int64),
                FEC_SEED, np.zeros(m, dtype=np.int64), valid_steps=int(fec.num_valid_examples),
                record_errors=(int(fec.num_train_examples), int(fec.num_valid_examples)))
            # Fingerprint words without the budget part; the budget is mixed in below
            # (without a train budget it is the full step count: keys are final here).
            words = fingerprint_words(probe, np.tile(self._task_ids, m))
            steps = np.asarray(probe.train_steps, dtype=np.int64).reshape(m, T)
            final = None
            if self.budget is None:
                full = np.tile(self._full_steps, m).reshape(m * T, 1).view(np.uint64)
                final = hash_rows(np.concatenate([words, full], axis=1))
            for j, i in enumerate(todo_unique):
                memo[algo_keys[i]] = (words[j * T:(j + 1) * T], int(steps[j].sum()),
                                      None if final is None else final[j * T:(j + 1) * T])
        entries = [memo[k] for k in algo_keys]
        probe_steps = sum(entry[1] for entry in entries)
        while len(memo) > self._probe_memo_size:
            memo.pop(next(iter(memo)))
        self.train_steps += probe_steps
        self.fec_probe_train_steps += probe_steps
        if self.budget is None:
            return [key for entry in entries for key in entry[2]]
        words = np.concatenate([entry[0] for entry in entries])
        budget_words = np.asarray(budget, dtype=np.int64).reshape(n * T, 1).view(np.uint64)
        return hash_rows(np.concatenate([words, budget_words], axis=1))

    def run_request(self, request: EvalRequest) -> PairResults:
        """Runs one request with this search's evaluator.

        With the library evaluator the backend is called directly: the search validated
        its initial algorithms and the mutator only draws addresses inside the memory, so
        the public entry point's per-algorithm address check is skipped.
        """
        kwargs = dict(memory=self.memory, max_abs_error=float(self.spec.max_abs_error),
                      seed=int(request.seed), algorithm_ids=request.algorithm_ids,
                      train_steps=request.train_steps, valid_steps=request.valid_steps,
                      record_errors=request.record_errors, **self.evaluator_options)
        args = (request.algorithms, self.tasks, request.algorithm_index, request.task_index)
        if self.evaluate_fn is evaluator_lib.evaluate_pairs and self.backend == "cpu":
            from azero_jax import cpu_evaluator
            return cpu_evaluator.evaluate_pairs(*args, **kwargs)
        if self.evaluate_fn is evaluator_lib.evaluate_pairs and self.backend == "jax":
            return self._run_jax(request, kwargs)
        return self.evaluate_fn(*args, backend=self.backend, op_sets=self.op_sets, **kwargs)

    def _run_jax(self, request: EvalRequest, kwargs: dict) -> PairResults:
        """JAX: pads every request to one fixed pair count so each kind compiles once.

        Padding pairs repeat the first pair with 0 training steps; their results are
        dropped.
        """
        from azero_jax import jax_evaluator
        kwargs.setdefault("dtype", "float32")
        n = len(request)
        size = 8
        while size < self.child_batch_size * len(self.tasks):
            size *= 2
        size = max(size, -(-n // size) * size)
        pad = size - n
        a_idx = np.concatenate([request.algorithm_index, np.full(pad, request.algorithm_index[0])])
        t_idx = np.concatenate([request.task_index, np.full(pad, request.task_index[0])])
        kwargs["train_steps"] = np.concatenate([np.asarray(request.train_steps, np.int64),
                                                np.zeros(pad, np.int64)])
        kwargs.setdefault("max_batch", size)
        out = jax_evaluator.evaluate_pairs(request.algorithms, self.tasks, a_idx, t_idx,
                                           op_sets=self.op_sets, **kwargs)
        fields = {name: (None if getattr(out, name) is None else getattr(out, name)[:n])
                  for name in ("fitness", "train_steps", "train_errors", "num_train_errors",
                               "valid_errors", "num_valid_errors")}
        return PairResults(**fields)

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
        P = len(self.population)
        n = min(self.child_batch_size, P - self.next_slot)
        first_id = self.num_individuals
        ids = np.arange(first_id, first_id + n, dtype=np.int64)
        if not self.initialized:
            children = [self._initial_algorithm() for _ in range(n)]
        else:
            children = self.propose(n)
        fitness = yield from self.evaluate_requests(children, ids, use_hurdle=self.initialized)
        slots = range(self.next_slot, self.next_slot + n)
        for j, slot in enumerate(slots):
            self.population[slot] = children[j]
            self.fitness[slot] = fitness[j]
            self.birth[slot] = ids[j]
        self.num_individuals += n
        best = int(np.argmax(fitness))
        if self.best_ever is None or fitness[best] > self.best_ever[1]:
            self.best_ever = (children[best], float(fitness[best]))
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
        """The best individual of the population (lowest slot on ties), as the reference."""
        if self.random_search and self.best_ever is not None:
            algorithm, fitness = self.best_ever
        else:
            count = len(self.population) if self.initialized else self.next_slot
            if count == 0:
                raise ValueError("no individual has been evaluated yet")
            best = int(np.argmax(self.fitness[:count]))
            algorithm, fitness = self.population[best], float(self.fitness[best])
        return Candidate(algorithm, fitness, self.num_individuals, self.train_steps,
                         self.elapsed_secs)

    def fec_hit_rate(self) -> float:
        if self.fec is None:
            return 0.0
        total = self.fec.hits + self.fec.misses
        return self.fec.hits / total if total else 0.0

    def progress_record(self) -> dict:
        """The figures of a progress line (also written to the metrics log)."""
        count = len(self.population) if self.initialized else max(self.next_slot, 1)
        f = self.fitness[:count]
        mean = float(f.mean())
        stdev = math.sqrt(max(0.0, float((f * f).mean()) - mean * mean))
        elapsed = self.elapsed_secs
        hurdles = self.spec.hurdles
        return {
            "individuals": int(self.num_individuals),
            "elapsed_secs": float(elapsed),
            "train_steps": int(self.train_steps),
            "mean_fitness": mean,
            "stdev_fitness": stdev,
            "best_fitness": float(f.max()),
            "fec_hit_rate": self.fec_hit_rate(),
            "hurdle": (hurdle_value(f, hurdles.percentile) if hurdles is not None else None),
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
