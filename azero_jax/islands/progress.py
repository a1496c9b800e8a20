"""Progress of a run of islands: records summed over groups, and the progress line.

Holds :func:`progress_record` (group totals combined into the search's record keys plus
``islands`` and ``migrations``), :func:`format_progress` and :class:`Progress`, which
calls a run's ``progress_fn`` every ``progress_every`` individuals.
"""

from __future__ import annotations

import math
import time
from typing import Sequence


def progress_record(totals: Sequence[dict], elapsed: float, num_islands: int) -> dict:
    """Combines group totals into a progress record (the search's keys plus islands)."""
    n = sum(t["fitness_count"] for t in totals)
    mean = sum(t["fitness_sum"] for t in totals) / n if n else 0.0
    sq = sum(t["fitness_sq_sum"] for t in totals) / n if n else 0.0
    individuals = sum(t["individuals"] for t in totals)
    steps = sum(t["train_steps"] for t in totals)
    hits = sum(t["fec_hits"] for t in totals)
    misses = sum(t["fec_misses"] for t in totals)
    return {
        "individuals": int(individuals), "elapsed_secs": float(elapsed),
        "train_steps": int(steps), "mean_fitness": mean,
        "stdev_fitness": math.sqrt(max(0.0, sq - mean * mean)),
        "best_fitness": max((t["best_fitness"] for t in totals), default=0.0),
        "fec_hit_rate": hits / (hits + misses) if hits + misses else 0.0, "hurdle": None,
        "individuals_per_sec": individuals / elapsed if elapsed > 0 else 0.0,
        "train_steps_per_sec": steps / elapsed if elapsed > 0 else 0.0,
        "islands": int(num_islands), "migrations": sum(t["migrations"] for t in totals),
        "worker_cpu_secs": sum(t.get("cpu_secs", 0.0) for t in totals),
        "stop_reached": any(t.get("stop_reached", False) for t in totals),
    }


def format_progress(record: dict) -> str:
    """The search's progress line plus ``islands=W, migrations=M``."""
    from azero_jax.evolution.experiment import format_progress as search_line
    return f"{search_line(record)}, islands={record['islands']}, migrations={record['migrations']}"


class Progress:
    """Calls ``progress_fn`` every ``every`` individuals (summed over islands)."""

    def __init__(self, every: int, progress_fn, num_islands: int, elapsed_before: float = 0.0):
        self.every = int(every)
        self.progress_fn = progress_fn
        self.num_islands = num_islands
        self.start = time.monotonic() - elapsed_before
        self.last: int | None = None  # individuals of the last record (none twice)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def maybe(self, totals: Sequence[dict], force: bool = False) -> dict:
        record = progress_record(totals, self.elapsed(), self.num_islands)
        individuals = record["individuals"]
        due = individuals >= (self.last or 0) + self.every
        if self.progress_fn is not None and (force or due) and individuals != self.last:
            self.last = individuals
            self.progress_fn(record)
        return record
