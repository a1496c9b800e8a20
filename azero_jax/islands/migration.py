"""The migration server: every island's latest upload, answered with random samples.

Holds :class:`MigrationServer` (which keeps its pools packed, see
:mod:`azero_jax.islands.packing`) and the opening and saving of its checkpoint
(``server.npz`` in a run's checkpoint folder).
"""

from __future__ import annotations

import collections
import os
import random as random_lib
import threading
from typing import Sequence

import numpy as np

from azero_jax.core.program import Algorithm
from azero_jax.evolution import checkpoint as checkpoint_lib
from azero_jax.islands.packing import PACK, concat_packed, pack, take_packed, unpack, with_sources


class MigrationServer:
    """Keeps the latest upload of every island and answers with random samples.

    ``exchange(island, algorithms)`` stores the island's upload (replacing its previous
    one) and returns as many algorithms drawn uniformly without replacement from the
    union of the OTHER islands' latest uploads (with replacement if that union is
    smaller; none while no other island has uploaded). An island never receives its own
    uploads back. :meth:`exchange_many` stores several uploads before drawing for any of
    them, so islands that migrate after the same lockstep step see each other's uploads.

    Uploads carry each algorithm's fitness and the answers say which island each migrant
    came from (the receiver keeps the fitness when both search the same tasks).

    Example:
        >>> from azero_jax.core import generator
        >>> server = MigrationServer(seed=1)
        >>> len(server.exchange(0, [generator.linear_model()] * 3))  # nobody else yet
        0
        >>> len(server.exchange(1, [generator.linear_model(0.5)] * 2)), server.exchanges
        (2, 2)
    """

    def __init__(self, seed: int = 0):
        self.rng = random_lib.Random(int(seed))
        # Pools are kept packed (plain arrays, see :func:`pack`): workers in other
        # processes send and receive them as they are, without building Algorithms here.
        self.pools: dict[int, dict[str, np.ndarray]] = {}
        self.exchanges = 0
        self.algorithms_in = 0
        self.algorithms_out = 0
        self.registrations: collections.Counter = collections.Counter()
        self.lock = threading.Lock()

    def exchange(self, island: int, algorithms: Sequence[Algorithm],
                 fitness=None) -> list[Algorithm]:
        return unpack(self.exchange_packed(island, pack(algorithms, fitness)))

    def exchange_packed(self, island: int, packed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """:meth:`exchange` on packed algorithms (what travels between processes)."""
        return self.exchange_many([(island, packed)])[0]

    def exchange_many(self, uploads: Sequence[tuple[int, dict[str, np.ndarray]]]
                      ) -> list[dict[str, np.ndarray]]:
        """Stores every ``(island, packed)`` upload, then answers each in order.

        Each answer holds as many migrants as its upload (fewer only when no other island
        has uploaded yet: then none), with ``a_source``: the island each came from.
        """
        with self.lock:
            for island, packed in uploads:
                self.pools[int(island)] = packed
                self.algorithms_in += len(packed[f"{PACK}_sizes"])
            return [self._sample(int(island), len(packed[f"{PACK}_sizes"]))
                    for island, packed in uploads]

    def _sample(self, island: int, k: int) -> dict[str, np.ndarray]:
        keys = [key for key in sorted(self.pools) if key != island]
        pools = [self.pools[key] for key in keys]
        # Positions in the union of the other islands' uploads, gathered pool by pool:
        # the union itself (W * P/2 algorithms) is never built.
        offsets = np.cumsum([0] + [len(p[f"{PACK}_sizes"]) for p in pools])
        n = int(offsets[-1])
        self.exchanges += 1
        if n == 0 or k == 0:
            return with_sources(pack([]), -1)
        if k <= n:
            chosen = np.array(self.rng.sample(range(n), k), dtype=np.int64)
        else:
            chosen = np.array([self.rng.randrange(n) for _ in range(k)], dtype=np.int64)
        owner = np.searchsorted(offsets, chosen, side="right") - 1
        order = np.argsort(owner, kind="stable")
        parts = [with_sources(take_packed(pools[j], chosen[order][owner[order] == j] - offsets[j]),
                              keys[j])
                 for j in np.unique(owner)]
        self.algorithms_out += k
        return take_packed(concat_packed(parts), np.argsort(order, kind="stable"))

    def save(self, path: str) -> None:
        """Checkpoints the pools, RNG and exchange counters (JSON + npz, no pickle).

        Worker registrations are not saved: a resumed run counts its own restarts.
        """
        with self.lock:
            arrays = {f"pool{island}_{key}": value for island, packed in self.pools.items()
                      for key, value in packed.items()}
            state = {"server": {"islands": sorted(self.pools), "exchanges": self.exchanges,
                                "algorithms_in": self.algorithms_in,
                                "algorithms_out": self.algorithms_out,
                                "rng": checkpoint_lib.rng_state_to_json(self.rng.getstate())}}
        checkpoint_lib.save(path, state, arrays)

    def load(self, path: str) -> None:
        """Restores what :meth:`save` wrote (the pools a resumed run draws from)."""
        state, arrays = checkpoint_lib.load(path)
        try:
            server = state["server"]
            pools = {int(island): {key[len(f"pool{island}_"):]: value
                                   for key, value in arrays.items()
                                   if key.startswith(f"pool{island}_")}
                     for island in server["islands"]}
            rng_state = checkpoint_lib.rng_state_from_json(server["rng"])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path}: not a migration server checkpoint ({error})") from None
        with self.lock:
            self.pools = pools
            self.rng.setstate(rng_state)
            self.exchanges = int(server["exchanges"])
            self.algorithms_in = int(server["algorithms_in"])
            self.algorithms_out = int(server["algorithms_out"])

    def register(self, worker: int) -> int:
        """Counts a worker's (re)start; returns how many times it started before."""
        with self.lock:
            self.registrations[int(worker)] += 1
            return self.registrations[int(worker)] - 1

    @property
    def restarts(self) -> int:
        return sum(max(0, n - 1) for n in self.registrations.values())

    def stats(self) -> dict:
        return {"exchanges": self.exchanges, "algorithms_in": self.algorithms_in,
                "algorithms_out": self.algorithms_out, "restarts": self.restarts,
                "pool_islands": len(self.pools)}


SERVER_CHECKPOINT = "server.npz"


def open_server(seed: int, checkpoint_dir: str | None) -> MigrationServer:
    """A migration server, resumed from ``checkpoint_dir`` when it holds one."""
    server = MigrationServer(seed)
    if checkpoint_dir and os.path.exists(os.path.join(checkpoint_dir, SERVER_CHECKPOINT)):
        server.load(os.path.join(checkpoint_dir, SERVER_CHECKPOINT))
    return server


def save_server(server: MigrationServer, checkpoint_dir: str | None) -> None:
    if checkpoint_dir:
        server.save(os.path.join(checkpoint_dir, SERVER_CHECKPOINT))
