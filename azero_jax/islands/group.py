"""A group of islands in one process, stepped in lockstep and evaluated together.

Holds :class:`IslandGroup`: the children of one step of every island of the group go to
the evaluator in ONE call per evaluation phase (FEC probe, hurdle stage, full), the batch
carrying an island index (offset task indices and algorithm ids); it also migrates its
islands through a server and compares their candidates on a common task set. Every
execution mode (batched, processes, Ray) runs its islands in such groups.
"""

from __future__ import annotations

import collections
import os
import time
from typing import Callable, Sequence

import numpy as np

from azero_jax.backends import backend as backend_lib
from azero_jax.backends import evaluator as evaluator_lib
from azero_jax.core.memory import MemoryConfig
from azero_jax.core.population import Programs, as_programs
from azero_jax.core.program import Algorithm
from azero_jax.core.results import PairResults
from azero_jax.core.tasks import TaskSpec, make_tasks
from azero_jax.evolution import checkpoint as checkpoint_lib
from azero_jax.evolution import experiment as experiment_lib
from azero_jax.evolution.regularized_evolution import Search, default_child_batch_size
from azero_jax.islands.config import IslandsConfig
from azero_jax.islands.island import Island, IslandSpec, checkpoint_path
from azero_jax.islands.packing import packed_sources
from azero_jax.spec.search_spec import SearchSpec


_ID_STRIDE = 1 << 20  # algorithm_ids of island i: id * stride + i (keys random streams)


class IslandGroup:
    """Islands of one process, stepped in lockstep with one evaluator call per phase.

    Args:
      spec: the shared search spec (each island overrides ``population_size`` and
        ``search_tasks``).
      islands: the :class:`IslandSpec` of each island of this group.
      config: the islands config (task sets, migration settings).
      memory, backend, child_batch_size, random_search, evaluator_options: as for
        :class:`~azero_jax.evolution.regularized_evolution.Search`.
      eval_seed: the evaluation seed shared by the group (islands differ by algorithm ids).
      server: an object with ``exchange_many([(island, packed), ...]) -> [packed, ...]``
        (see :meth:`~azero_jax.islands.migration.MigrationServer.exchange_many`).
      evaluate_fn: an ``evaluate_pairs``-compatible callable (default the library's).
      checkpoint_dir: per-island checkpoints, loaded on construction when present.
      task_specs: the task collection of each task-set name ('' = the spec's).
      rank_tasks, rank_seed: the common task set (and evaluation seed) that islands'
        candidates are compared on (the experiments loop gives T_select). None: the
        spec's search tasks when the islands search different task sets, else their
        search fitness (then comparable).
    """

    def __init__(self, spec: SearchSpec, islands: Sequence[IslandSpec], config: IslandsConfig,
                 *, memory: MemoryConfig, backend: str = "auto",
                 child_batch_size: int | None = None, random_search: bool = False,
                 evaluator_options: dict | None = None, eval_seed: int = 1,
                 server=None, evaluate_fn: Callable | None = None,
                 checkpoint_dir: str | None = None,
                 task_specs: dict[str, tuple[TaskSpec, ...]] | None = None,
                 rank_tasks: Sequence[TaskSpec] | None = None, rank_seed: int = 0):
        self.spec = spec
        self.config = config
        self.memory = memory
        self.backend = evaluator_lib.resolve_backend(backend) if evaluate_fn is None else backend
        self.evaluate_fn = evaluate_fn
        self.evaluator_options = dict(evaluator_options or {})
        self._backend = None
        self.server = server
        self.checkpoint_dir = checkpoint_dir
        self.eval_seed = int(eval_seed)
        self.num_islands_total = int(config.num_islands)
        task_specs = dict(task_specs or {})
        task_specs.setdefault("", spec.search_tasks)
        task_specs.update({name: specs for name, specs in config.task_sets
                           if name not in task_specs})
        self.task_specs = {name: tuple(specs) for name, specs in task_specs.items()}
        self.rank_tasks = None if rank_tasks is None else tuple(rank_tasks)
        # Compared with == (an inline dataset makes a task spec unhashable).
        island_tasks = [self.task_specs[config.task_set(i)]
                        for i in range(int(config.num_islands))]
        if self.rank_tasks is None and any(t != island_tasks[0] for t in island_tasks):
            self.rank_tasks = self.task_specs[""]
        self.rank_seed = int(rank_seed)
        self._rank_task_list = None
        self._rank_memo: dict[bytes, float] = {}
        # Tasks are built once per task set and shared by its islands.
        self.task_lists: dict[str, list] = {}
        self.task_offset: dict[str, int] = {}
        self.tasks: list = []
        for island in islands:
            if island.task_set not in self.task_lists:
                self.task_lists[island.task_set] = make_tasks(task_specs[island.task_set])
                self.task_offset[island.task_set] = len(self.tasks)
                self.tasks.extend(self.task_lists[island.task_set])
        # The searches call their backend directly, past evaluate_pairs' checks.
        evaluator_lib.check_tasks_fit_memory(self.tasks, memory)
        self.islands: list[Island] = []
        for island in islands:
            island_spec = spec.replace(population_size=island.population_size,
                                       search_tasks=tuple(task_specs[island.task_set]))
            cbs = child_batch_size or default_child_batch_size(island.population_size,
                                                               self.backend)
            search = Search(island_spec, memory=memory, seed=island.seed, backend=self.backend,
                            child_batch_size=min(int(cbs), island.population_size),
                            random_search=random_search, tasks=self.task_lists[island.task_set],
                            evaluate_fn=evaluate_fn, evaluator_options=self.evaluator_options)
            search.eval_seed = self.eval_seed
            self.islands.append(Island(island, search, config.migration_fraction,
                                       config.migration_interval))
        op_sets = [island.search.op_sets for island in self.islands]
        self.op_sets = tuple(frozenset().union(*(s[c] for s in op_sets)) for c in range(3))
        self.max_abs_error = float(spec.max_abs_error)
        self.calls = collections.Counter()  # evaluator calls per request kind
        self.pairs = collections.Counter()
        self.resumed = 0
        if checkpoint_dir:
            for island in self.islands:
                path = checkpoint_path(checkpoint_dir, island.index)
                if os.path.exists(path):
                    island.load(path)
                    self.resumed += 1

    # -- evaluation ---------------------------------------------------------------------

    def _evaluate(self, requests: list, owners: list[Island]) -> list[PairResults]:
        """Runs requests of the same signature as ONE evaluator call; splits the results."""
        parts, a_idx, t_idx, steps, ids, spans = [], [], [], [], [], []
        start = count = 0
        for request, island in zip(requests, owners):
            offset = self.task_offset[island.island.task_set]
            a_idx.append(np.asarray(request.algorithm_index, np.int64) + count)
            t_idx.append(np.asarray(request.task_index, np.int64) + offset)
            steps.append(np.asarray(request.train_steps, np.int64))
            rid = np.asarray(request.algorithm_ids, np.int64)
            if request.kind != "probe":  # probes keep id 0 (fingerprints are deterministic)
                rid = rid * _ID_STRIDE + island.index % _ID_STRIDE
            ids.append(rid)
            parts.append(as_programs(request.algorithms))
            count += len(request.algorithms)
            spans.append((start, start + len(request)))
            start += len(request)
        first = requests[0]
        kind = first.kind
        self.calls[kind] += 1
        self.pairs[kind] += start
        algorithms = parts[0] if len(parts) == 1 else Programs.concatenate(parts)
        out = self._call(algorithms, np.concatenate(a_idx), np.concatenate(t_idx),
                         np.concatenate(steps), np.concatenate(ids), int(first.seed),
                         first.valid_steps, first.record_errors)
        results = []
        for lo, hi in spans:
            results.append(out.take(slice(lo, hi)))
        return results

    def _call(self, algorithms, a_idx, t_idx, steps, ids, seed, valid_steps, record):
        return self._evaluator().run(algorithms, a_idx, t_idx, train_steps=steps, seed=seed,
                                     algorithm_ids=ids, valid_steps=valid_steps,
                                     record_errors=record)

    def _evaluator(self):
        """The group's backend (:mod:`azero_jax.backends.backend`), made on first use. JAX pads
        every call to at least one step of every island (each request kind compiles once) and
        runs on one device unless ``config.shard``."""
        if self._backend is None:
            options = dict(self.evaluator_options)
            if self.evaluate_fn is None and self.backend == "jax" and not self.config.shard:
                import jax
                options.setdefault("devices", jax.local_devices()[:1])
            step_pairs = sum(i.search.child_batch_size * len(i.search.tasks)
                             for i in self.islands)
            self._backend = backend_lib.make_evaluator(
                self.backend, self.tasks, memory=self.memory, max_abs_error=self.max_abs_error,
                op_sets=self.op_sets, options=options, evaluate_fn=self.evaluate_fn,
                pad_to=step_pairs)
        return self._backend

    def drive(self, generators: dict[int, object]) -> dict[int, object]:
        """Drives request generators of many islands together; returns their values.

        Every round gathers the pending request of each island, groups them by
        signature (seed, valid steps, recorded errors: the FEC probe, or the stage and
        full evaluations) and runs each group as one evaluator call.
        """
        by_index = {island.index: island for island in self.islands}
        values: dict[int, object] = {}
        pending: dict[int, object] = {}
        for index, gen in generators.items():
            try:
                pending[index] = next(gen)
            except StopIteration as stop:
                values[index] = stop.value
        while pending:
            groups = collections.defaultdict(list)
            for index, request in pending.items():
                key = (request.seed, request.valid_steps, request.record_errors)
                groups[key].append(index)
            answers = {}
            for members in groups.values():
                results = self._evaluate([pending[i] for i in members],
                                         [by_index[i] for i in members])
                answers.update(zip(members, results))
            pending = {}
            for index, result in answers.items():
                try:
                    pending[index] = generators[index].send(result)
                except StopIteration as stop:
                    values[index] = stop.value
        return values

    # -- steps ---------------------------------------------------------------------------

    def active(self, max_individuals: int | None = None) -> list[Island]:
        out = []
        for island in self.islands:
            s = island.search
            if s.done:
                continue
            if (max_individuals is not None and s.initialized and s.next_slot == 0
                    and s.num_individuals >= max_individuals):
                continue
            out.append(island)
        return out

    def step(self, max_individuals: int | None = None) -> int:
        """One step of every active island (one evaluator call per phase), then migrations.

        Returns the number of individuals evaluated (children and migrants).
        """
        active = self.active(max_individuals)
        if not active:
            return 0
        made = self.drive({island.index: island.search.step_requests() for island in active})
        for island in active:
            island.evals_since_migration += made[island.index]
        total = sum(made.values())
        total += self.migrate([island for island in active if island.due])
        return total

    def same_tasks(self, receiver: Island, sources) -> np.ndarray:
        """Whether each source island searches the same tasks as ``receiver``."""
        mine = self.task_specs[receiver.island.task_set]
        return np.array([int(src) >= 0 and
                         self.task_specs[self.config.task_set(int(src))] == mine
                         for src in sources], dtype=bool)

    def migrate(self, islands: Sequence[Island]) -> int:
        """Uploads the migrants of ``islands`` (all of them first, so islands migrating
        after the same step receive each other's), receives theirs, then re-evaluates
        together those that come from islands on other tasks; returns how many."""
        if not islands or self.server is None:
            return 0
        answers = self.server.exchange_many([(island.index, island.upload())
                                             for island in islands])
        made = self.drive({island.index: island.accept_requests(
            answer, self.same_tasks(island, packed_sources(answer)))
            for island, answer in zip(islands, answers)})
        return sum(made.values())

    def run(self, should_stop: Callable[[], bool] | None = None,
            max_individuals: int | None = None,
            on_step: Callable[["IslandGroup"], None] | None = None,
            stop_search_fitness: float | None = None) -> None:
        """Steps until every island is done (or ``should_stop``/the fitness stop)."""
        while self.active(max_individuals):
            self.step(max_individuals)
            if on_step is not None:
                on_step(self)
            if stop_search_fitness is not None and self.stop_reached(stop_search_fitness):
                break
            if should_stop is not None and should_stop():
                break

    # -- state -----------------------------------------------------------------------------

    def save(self) -> None:
        if not self.checkpoint_dir:
            return
        for island in self.islands:
            island.save(checkpoint_path(self.checkpoint_dir, island.index))

    def best_fitness(self) -> float:
        best = -1.0
        for island in self.islands:
            s = island.search
            count = len(s.population) if s.initialized else s.next_slot
            if count:
                best = max(best, float(s.fitness[:count].max()))
        return best

    # -- comparing islands ------------------------------------------------------------------

    def rank_fitness(self, algorithms: Sequence[Algorithm]) -> np.ndarray:
        """Mean fitness of each algorithm on the common task set (``rank_tasks``).

        Each is evaluated as :func:`azero_jax.evolution.experiment.evaluate_on_tasks` would alone
        (algorithm id 0, ``rank_seed``), so the value equals its T_select fitness when
        ``rank_tasks`` is T_select. Results are memoised per exact algorithm.
        """
        if self.rank_tasks is None:
            raise ValueError("this group has no common task set to rank on")
        keys = [a.key() for a in algorithms]
        todo = list({k: i for i, k in enumerate(keys) if k not in self._rank_memo}.values())
        if todo:
            if self._rank_task_list is None:
                self._rank_task_list = make_tasks(self.rank_tasks)
            fitness = experiment_lib.mean_fitness_on_tasks(
                [algorithms[i] for i in todo], self._rank_task_list, memory=self.memory,
                max_abs_error=self.max_abs_error, seed=self.rank_seed,
                backend=self.backend, evaluate_fn=self.evaluate_fn, **self.evaluator_options)
            for i, f in zip(todo, fitness):
                self._rank_memo[keys[i]] = float(f)
        return np.array([self._rank_memo[k] for k in keys], dtype=np.float64)

    def stop_reached(self, threshold: float | None = None) -> bool:
        """Whether an island's candidate reached ``threshold`` (default the config's
        ``stop_search_fitness``).

        Its search fitness must reach it and, when islands are compared on a common
        task set (``rank_tasks``), its fitness there too: an island on easier tasks
        (e.g. MNIST beside CIFAR) must not stop the others by its own numbers alone.
        """
        threshold = self.config.stop_search_fitness if threshold is None else threshold
        if threshold is None:
            return False
        reached = [island.search.candidate().algorithm for island in self.islands
                   if island.search.num_individuals and
                   island.search.candidate().fitness >= threshold]
        if not reached or self.rank_tasks is None:
            return bool(reached)
        return bool((self.rank_fitness(reached) >= threshold).any())

    def candidates(self) -> list[dict]:
        """Each island's best individual (exactly, as JSON lists), fitness and counters."""
        out = []
        for island in self.islands:
            item = island.summary()
            if island.search.num_individuals:
                candidate = island.search.candidate()
                item["algorithm"] = checkpoint_lib.algorithm_to_json(candidate.algorithm)
                item["fitness"] = float(candidate.fitness)
                if self.rank_tasks is not None:
                    item["rank_fitness"] = float(self.rank_fitness([candidate.algorithm])[0])
            out.append(item)
        return out

    def totals(self) -> dict:
        """Counters summed over the group's islands (for progress lines)."""
        fitness = np.concatenate([
            island.search.fitness[:len(island.search.population) if island.search.initialized
                                  else island.search.next_slot] for island in self.islands])
        hits = sum(i.search.fec.hits for i in self.islands if i.search.fec is not None)
        misses = sum(i.search.fec.misses for i in self.islands if i.search.fec is not None)
        return {"individuals": sum(i.search.num_individuals for i in self.islands),
                "train_steps": sum(i.search.train_steps for i in self.islands),
                "fitness_sum": float(fitness.sum()), "fitness_sq_sum": float((fitness ** 2).sum()),
                "fitness_count": int(len(fitness)),
                "best_fitness": float(fitness.max()) if len(fitness) else 0.0,
                "fec_hits": hits, "fec_misses": misses,
                "migrations": sum(i.migrations for i in self.islands),
                "stop_reached": self.stop_reached(),
                "islands": len(self.islands), "cpu_secs": time.process_time()}
