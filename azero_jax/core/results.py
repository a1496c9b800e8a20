"""What an evaluation of (algorithm, task) pairs returns (a leaf module: every backend
produces it and the search consumes it)."""

from __future__ import annotations

import dataclasses

import numpy as np

NEG_TWO_OVER_PI = -0.63661977236758138243
# The reference's default abort threshold: a step aborts when a prediction's |value| exceeds
# it (``SearchExperimentSpec.max_abs_error``, whose default this is).
MAX_ABS_ERROR = 100.0


def flip_and_squash(x):
    """``1 - (2/pi) atan(x)`` for finite x >= 0, else 0 (the reference's regression fitness)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        out = 1.0 + NEG_TWO_OVER_PI * np.arctan(x)
    return np.where(np.isfinite(x), out, 0.0)[()]


@dataclasses.dataclass
class PairResults:
    """What an evaluation of B (algorithm, task) pairs returns, per pair.

    Attributes:
      fitness: ``[B]`` float64 fitness in [0, 1].
      train_steps: ``[B]`` int64 training steps executed (an aborting step counts).
      train_errors: ``[B, K_train]`` float64 per-step ``|label - s1|`` of the first
        training steps (first epoch), NaN beyond ``num_train_errors``; only when recorded.
      num_train_errors: ``[B]`` how many train errors were recorded.
      valid_errors: ``[B, K_valid]`` per-example validation errors (RMS: ``|label - s1|``,
        accuracy: 0/1), NaN beyond ``num_valid_errors``; only when recorded.
      num_valid_errors: ``[B]``.
    """

    fitness: np.ndarray
    train_steps: np.ndarray
    train_errors: np.ndarray | None = None
    num_train_errors: np.ndarray | None = None
    valid_errors: np.ndarray | None = None
    num_valid_errors: np.ndarray | None = None

    def error_fingerprint(self, i: int) -> tuple[bytes, bytes]:
        """Exact bytes of pair ``i``'s recorded errors (what FEC hashes)."""
        train = self.train_errors[i, :self.num_train_errors[i]]
        valid = self.valid_errors[i, :self.num_valid_errors[i]]
        # +0.0 and -0.0 hash alike in the reference (libstdc++ std::hash<double>).
        return ((train + 0.0).tobytes(), (valid + 0.0).tobytes())

    def take(self, index) -> "PairResults":
        """The results of the pairs at ``index`` (an index array or a slice)."""
        return PairResults(**{field.name: (None if getattr(self, field.name) is None
                                           else np.asarray(getattr(self, field.name))[index])
                              for field in dataclasses.fields(self)})
