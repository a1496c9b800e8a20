"""The evaluation side of a search: what a child's fitness is, and what runs to learn it.

:class:`SearchEvaluator` holds a search's evaluation policy -- the train budget (§8), the
FEC probes, fingerprint keys and LRU cache (§7), hurdles (paper S3), de-duplication within
a step, and the combination of per-task fitnesses (§4.6) -- and turns a batch of children
into the :class:`EvalRequest` batches a backend runs (:mod:`azero_jax.backends.backend`). It keeps
the counters these produce (training steps, cache hits, hurdle statistics).

:class:`~azero_jax.evolution.regularized_evolution.Search` owns the population and the controller
(selection, mutation, replacement) and drives these requests with its backend; islands merge the
requests of many searches into one call (:mod:`azero_jax.islands.group`).

Example:
    >>> import numpy as np
    >>> from azero_jax.core import generator
    >>> from azero_jax.spec import search_spec as spec_lib
    >>> from azero_jax.core.population import Programs
    >>> from azero_jax.evolution.search_evaluator import SearchEvaluator, PopulationFitness
    >>> s = spec_lib.parse_search_experiment_spec(
    ...     open("azero_jax/specs/linear_search.textproto").read())
    >>> evaluation = SearchEvaluator(s, seed=1, child_batch_size=10)
    >>> requests = evaluation.evaluate_requests(
    ...     Programs.from_algorithms([generator.linear_model(0.01)]), np.arange(1), False,
    ...     PopulationFitness(np.zeros(0), np.zeros(0), np.zeros(0, bool)))
    >>> next(requests).kind  # the FEC probe comes first
    'probe'
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Generator, NamedTuple, Sequence

import numpy as np

from azero_jax.backends.evaluator import combine_fitnesses
from azero_jax.core import generator as generator_lib
from azero_jax.core.population import ProgramRows, Programs, as_programs
from azero_jax.core.population import search_kernels as _k
from azero_jax.core.results import PairResults
from azero_jax.core.tasks import Task, make_tasks
from azero_jax.evolution.fec import FEC_SEED, FECCache, LRUTable, hash_row_arrays
from azero_jax.evolution.hurdles import HurdleStats, hurdle_value, stage_tasks, stage_train_examples
from azero_jax.evolution.train_budget import TrainBudget
from azero_jax.spec.search_spec import SearchSpec


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
    ``"full"``. ``algorithms`` is a :class:`~azero_jax.core.population.Programs` batch; task
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


class PopulationFitness(NamedTuple):
    """The population's fitness arrays, which hurdles are judged against."""

    fitness: np.ndarray
    stage_fitness: np.ndarray  # first-stage fitness, NaN where unknown
    fully_evaluated: np.ndarray  # False: failed a hurdle (or an empty slot)


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


class SearchEvaluator:
    """A search's evaluation policy and its counters (see the module docstring).

    Args:
      spec: the search spec (tasks, FEC, train budget, hurdles, fitness combination).
      seed: the search's seed (the evaluation seed is derived from it).
      child_batch_size: children per step (sizes the memos and the constant index rows).
      tasks: the search tasks (default ``make_tasks(spec.search_tasks)``).
    """

    def __init__(self, spec: SearchSpec, *, seed: int, child_batch_size: int,
                 tasks: Sequence[Task] | None = None):
        self.spec = spec
        self.tasks = list(make_tasks(spec.search_tasks) if tasks is None else tasks)
        self.child_batch_size = int(child_batch_size)
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
        self._full_steps = np.array([t.total_train_steps for t in self.tasks], dtype=np.int64)
        self._task_ids = np.array([t.index for t in self.tasks], dtype=np.int64)
        self._constant_rows: dict[str, np.ndarray] = {}
        self.eval_seed = (int(seed) * 2654435761 + 12345) % (2**31 - 1)
        hurdles = spec.hurdles
        if hurdles is not None:
            self._stage_tasks = stage_tasks(hurdles, len(self.tasks))
            self._stage_steps = stage_train_examples(hurdles, self._full_steps)
            # A stage with every training example is the start of the full evaluation.
            self._stage_is_prefix = bool((self._stage_steps >= self._full_steps).all())
        self.reset()

    def reset(self) -> None:
        """Empties the cache and memos and zeroes the counters."""
        spec = self.spec
        self.train_steps = 0  # every training step run: full, stage and FEC probe runs
        self.fec = (FECCache(spec.fec.cache_size, spec.fec.forget_every)
                    if spec.fec is not None else None)
        self.fec_saved_train_steps = 0
        memo_size = 2 * max(int(spec.population_size), self.child_batch_size)
        self._probe_memo = (_ProbeMemo(memo_size, len(self.tasks))
                            if spec.fec is not None else None)
        self.fec_probe_train_steps = 0
        self.hurdle_stats = HurdleStats()
        # Stage fitness of recent equivalent children (same fingerprints, or same program).
        self.stage_memo = _StageMemo(memo_size)
        self.budget_rejections = 0
        self.last_stage_fitness = np.zeros(0)
        self.last_failed = np.zeros(0, dtype=bool)

    def fec_hit_rate(self) -> float:
        """Hits over lookups of the FEC cache (0 without FEC)."""
        if self.fec is None:
            return 0.0
        total = self.fec.hits + self.fec.misses
        return self.fec.hits / total if total else 0.0

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

    def evaluate_requests(self, children, ids: np.ndarray, use_hurdle: bool,
                          population: PopulationFitness
                          ) -> Generator[EvalRequest, PairResults, np.ndarray]:
        """Evaluates children; yields :class:`EvalRequest` objects, returns their fitnesses.

        ``children`` is a :class:`~azero_jax.core.population.Programs` batch (or a list of
        Algorithms); ``population`` is the population they will join (hurdles are drawn
        from it). After the call, :attr:`last_stage_fitness` holds each child's
        first-stage fitness (NaN where unknown) and :attr:`last_failed` which children
        failed the hurdle.
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
                failed[staged] = self._judge(stage_fitness[staged], budget, pending, staged,
                                             population)
                pending &= ~np.repeat(failed, T)
        elif hurdles is not None and use_hurdle:
            staged = np.flatnonzero((pending & (flat_budget > 0)).reshape(n, T).any(axis=1))
            if len(staged):
                stage_fitness[staged] = yield from self._stage(children, ids, staged, budget,
                                                               keys_hi, keys_lo)
                failed[staged] = self._judge(stage_fitness[staged], budget, pending, staged,
                                             population)
                pending &= ~np.repeat(failed, T)
        yield from self._full_pairs(children, ids, pending, budget, keys_hi, keys_lo, flat)
        fitness = (np.asarray(combine_fitnesses(per_task, mode), np.float64).reshape(n)
                   if T else np.zeros(n))
        # A failed child keeps its first-stage fitness, but never above the population's
        # lowest full fitness: a partial measurement must not outrank full ones (the few
        # tasks of a stage are noisy, and selection would favour the lucky failures).
        if failed.any():
            full = population.fitness[population.fully_evaluated]
            floor = full.min() if len(full) else np.inf
            fitness[failed] = np.minimum(stage_fitness[failed], floor)
        self.last_stage_fitness = stage_fitness
        self.last_failed = failed
        return fitness

    def _judge(self, stage_fit: np.ndarray, budget, pending, staged,
               population: PopulationFitness) -> np.ndarray:
        """Which staged children fail the hurdle (counted in the stats)."""
        known = population.stage_fitness[~np.isnan(population.stage_fitness)]
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

def words_per_fingerprint(fec) -> int:
    """Words hashed per fingerprint before the budget word (see
    :func:`azero_jax.evolution.fec.fingerprint_words`)."""
    return int(fec.num_train_examples) + int(fec.num_valid_examples) + 3
