"""What a run of islands returns: :class:`IslandsResult`, built from the islands' candidates.

:func:`result_from_candidates` picks the run's candidate, the best island's best (islands
compared on a common task set when they search different ones), and sums the counters.
Every execution mode ends with it.
"""

from __future__ import annotations

import dataclasses

from azero_jax.core.program import Algorithm, format_algorithm
from azero_jax.evolution import checkpoint as checkpoint_lib


@dataclasses.dataclass
class IslandsResult:
    """What a run of islands returns."""

    algorithm: Algorithm
    fitness: float  # the chosen island's search fitness (on its own tasks)
    island: int  # which island it came from
    num_islands: int
    individuals: int
    train_steps: int
    elapsed_secs: float
    migrations: int  # migration events (island receptions)
    server: dict
    restarts: int
    islands: list[dict]
    evaluator_calls: dict
    # The chosen candidate's fitness on the common task set the islands were ranked on
    # (None when all islands search the same tasks and no common set was given).
    rank_fitness: float | None = None

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["algorithm"] = format_algorithm(self.algorithm)
        return out


def result_from_candidates(candidates: list[dict], elapsed: float, server_stats: dict,
                           restarts: int, calls: dict) -> IslandsResult:
    """The run's result from every island's candidate: the best island's best.

    Args:
      candidates: one dict per island, in island order, as
        :meth:`~azero_jax.islands.group.IslandGroup.candidates` gives them; those of
        islands that evaluated nothing have no ``fitness``.
      elapsed: the run's seconds.
      server_stats: the migration server's
        :meth:`~azero_jax.islands.migration.MigrationServer.stats` (plus what the
        mode adds, e.g. ``worker_restarts``).
      restarts: worker restarts.
      calls: evaluator calls per request kind, summed over groups.

    Raises:
      ValueError: when no island evaluated any individual.
    """
    scored = [c for c in candidates if "fitness" in c]
    if not scored:
        raise ValueError("no island evaluated any individual")
    # Islands on different task sets are compared on a common one (their search
    # fitnesses are on different tasks and not comparable); ties go to the lowest island.
    best = max(scored, key=lambda c: (c.get("rank_fitness", c["fitness"]), -c["island"]))
    return IslandsResult(
        algorithm=checkpoint_lib.algorithm_from_json(best["algorithm"]),
        fitness=float(best["fitness"]),
        island=int(best["island"]), num_islands=len(candidates),
        individuals=sum(c["individuals"] for c in candidates),
        train_steps=sum(c["train_steps"] for c in candidates), elapsed_secs=float(elapsed),
        migrations=sum(c["migrations"] for c in candidates), server=server_stats,
        restarts=int(restarts),
        islands=[{k: v for k, v in c.items() if k != "algorithm"} for c in candidates],
        evaluator_calls=dict(calls), rank_fitness=best.get("rank_fitness"))
