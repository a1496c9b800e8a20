"""Hurdles (paper S3; So et al. 2019): a cheap first stage gates the full evaluation.

Not in the C++ reference (spec §10 item 2): our extension, configured by the spec
field ``hurdles { percentile: 75 num_train_examples: 10 num_tasks: 2 }``.

A child that needs a full evaluation (i.e. is not fully answered by the FEC cache) is
first evaluated cheaply: on the first ``num_tasks`` search tasks with at most
``num_train_examples`` training steps each (0 = all of them); with both 0, the default
stage is the first fifth of every task's training examples: the paper's hurdle
early-stops training (S3). On the demo spec it saves 2.3x the training steps and solves
as often and as fast as no hurdle, where a stage of the first 2 of the 10 tasks solved
far less often (`docs/benchmarks.md`, "Hurdles"). If that
first-stage fitness reaches the rolling hurdle -- the ``percentile``-th percentile of the
unique *first-stage* fitnesses of the population (the same measurement the child is
judged on) -- the child is fully evaluated; otherwise it keeps its first-stage fitness,
capped at the population's lowest full fitness (a partial measurement must not outrank a
full one: a stage of a few tasks is noisy, and selection would favour lucky failures), and
it is never the search's candidate.

A stage with all training examples is the start of the full evaluation: a child that
passes is evaluated only on the remaining tasks, and every evaluated child has a stage
fitness. A stage with fewer examples cannot be continued (its validation pass runs
Predict, which may write memory the next training steps read), so a child that passes is
evaluated from the start; equivalent children (the same FEC fingerprints on every task,
or without FEC the same program) seen recently reuse the remembered stage fitness. The
hurdle is inactive while the initial population is being evaluated (see
:mod:`azero_jax.evolution.regularized_evolution`).

Example:
    >>> from azero_jax.evolution.hurdles import hurdle_value
    >>> float(hurdle_value([0.0, 0.0, 0.5, 1.0, 1.0], 75))
    0.75
"""

from __future__ import annotations

import dataclasses

import numpy as np

from azero_jax.spec import spec_protos


@dataclasses.dataclass(frozen=True)
class HurdlesConfig:
    """The ``hurdles { }`` spec extension.

    Attributes:
      percentile: percentile (0..100) of the unique population fitnesses (paper: 75).
      num_train_examples: first-stage training steps per task (0 = the task's full count).
      num_tasks: first-stage tasks, the first ones of T_search (0 = all tasks). With both
        0, the default stage: every task, the first fifth of its training examples.
    """

    percentile: float = spec_protos.default("HurdlesSpec", "percentile")
    num_train_examples: int = spec_protos.default("HurdlesSpec", "num_train_examples")
    num_tasks: int = spec_protos.default("HurdlesSpec", "num_tasks")

    def __post_init__(self):
        if not 0.0 <= float(self.percentile) <= 100.0:
            raise ValueError(f"hurdles.percentile must be in [0, 100], got {self.percentile}")
        if int(self.num_train_examples) < 0 or int(self.num_tasks) < 0:
            raise ValueError("hurdles.num_train_examples and hurdles.num_tasks must be >= 0")


def stage_tasks(config: HurdlesConfig, num_tasks: int) -> int:
    """How many of the ``num_tasks`` search tasks the first stage runs (the first ones)."""
    if int(config.num_tasks):
        return min(int(config.num_tasks), num_tasks)
    return num_tasks


def stage_train_examples(config: HurdlesConfig, train_steps) -> np.ndarray:
    """The first stage's training steps on each search task, given each task's full count:
    ``num_train_examples``; or, when only ``num_tasks`` is set, all of them (the stage is
    a prefix of the tasks); or, with neither set, the default stage: the first fifth of
    every task's training examples (at least one).

    Example:
        >>> stage_train_examples(HurdlesConfig(), [100, 1000]).tolist()
        [20, 200]
    """
    full = np.asarray(train_steps, dtype=np.int64)
    if int(config.num_train_examples):
        return np.minimum(full, int(config.num_train_examples))
    if int(config.num_tasks):
        return full
    return np.maximum(1, full // 5)


def hurdle_value(fitnesses, percentile: float = 75.0) -> float:
    """The ``percentile``-th percentile (linear interpolation) of the unique fitnesses."""
    unique = np.unique(np.asarray(fitnesses, dtype=np.float64))
    if unique.size == 0:
        return 0.0
    return float(np.percentile(unique, percentile))


@dataclasses.dataclass
class HurdleStats:
    """Counters of the first stage (all in (algorithm, task) training steps)."""

    evaluated: int = 0  # children that met the hurdle (first stage run or remembered)
    memo_hits: int = 0  # children whose first-stage fitness was remembered (an equivalent
    # child -- same FEC fingerprints, or the same program without FEC -- ran it recently)
    passed: int = 0
    failed: int = 0
    stage_train_steps: int = 0  # steps spent in first stages
    saved_train_steps: int = 0  # full-evaluation steps that failing children did not run

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
