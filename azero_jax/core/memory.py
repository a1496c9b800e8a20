"""The typed memory's address-space sizes (the reference's compile-time MAX_*_ADDRESSES).

A leaf module: programs, the mutator and the randomizer need the sizes without the
evaluation layer.

Example:
    >>> from azero_jax.core.memory import MemoryConfig
    >>> MemoryConfig(4, 3, 1).num_vectors
    3
"""

from __future__ import annotations

import dataclasses

from azero_jax.core.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class MemoryConfig:
    """Address-space sizes (the reference's compile-time MAX_*_ADDRESSES)."""

    num_scalars: int
    num_vectors: int
    num_matrices: int

    def __post_init__(self):
        for name, minimum in (("num_scalars", 2), ("num_vectors", 1), ("num_matrices", 1)):
            value = getattr(self, name)
            if int(value) != value or value < minimum:
                raise ConfigError(f"{name} must be an integer >= {minimum}, got {value}")
