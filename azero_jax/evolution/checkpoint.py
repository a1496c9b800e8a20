"""Exact, atomic checkpoints of a search: one ``.npz`` file, no pickle.

A checkpoint holds the population (every instruction field, per-slot sizes), the
fitnesses and birth numbers, the controller RNG state, the FEC cache, every counter
and the caller's own JSON state (the experiment loop's), all in one ``.npz`` written
to a temporary file and renamed into place (``os.replace``), so a crash or SIGKILL
leaves either the previous or the new checkpoint, never a torn one. The JSON part is
stored inside the npz as a string and also written beside it (``.json``) for people.
Load with ``numpy.load(allow_pickle=False)``.

Example:
    >>> import tempfile, os
    >>> from azero_jax.evolution import checkpoint
    >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.npz")
    >>> checkpoint.save(path, {"step": 3}, {"x": __import__("numpy").arange(3)})
    >>> state, arrays = checkpoint.load(path)
    >>> state["step"], arrays["x"].tolist()
    (3, [0, 1, 2])
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import threading
import zipfile

import numpy as np

from azero_jax.core.errors import CheckpointError
from azero_jax.core.population import Programs
from azero_jax.core.program import COMPONENTS, INSTRUCTION_DTYPE, Algorithm, format_algorithm
from azero_jax.evolution.hurdles import HurdleStats

FORMAT_VERSION = 3  # 2: the search's tensors and counter-based random streams; 3: FEC keys hashed as sums
_FIELDS = INSTRUCTION_DTYPE.names


@contextlib.contextmanager
def signals_deferred(signums=(signal.SIGINT, signal.SIGTERM)):
    """Holds back SIGINT / SIGTERM until the block is done, then delivers them.

    A save must not be cut between writing and renaming (a second Ctrl-C used to abort
    it and leave no checkpoint): signals that arrive meanwhile are recorded and raised
    again once the previous handlers are back. Outside the main thread (where Python
    cannot set handlers) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {signum: signal.signal(signum, lambda number, frame: received.append(number))
                for signum in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in received:
            signal.raise_signal(signum)


def save(path: str, state: dict, arrays: dict[str, np.ndarray]) -> None:
    """Atomically writes ``state`` (JSON-able) and ``arrays`` to ``path`` (an .npz).

    SIGINT and SIGTERM are deferred until both files are in place.
    """
    with signals_deferred():
        _save(path, state, arrays)


def write_json_atomic(path: str, data) -> None:
    """Writes ``data`` as JSON to ``path`` through a renamed temporary file, signals deferred."""
    with signals_deferred():
        # mode 0644: mkstemp's 0600 would hide the state from other readers.
        _replace_atomically(path, lambda handle: json.dump(data, handle), binary=False,
                            suffix=".json", mode=0o644)


def _replace_atomically(path: str, write, *, binary: bool, suffix: str,
                        mode: int | None = None) -> None:
    """Calls ``write(handle)`` on a temporary file beside ``path``, then renames it there.

    A crash at any point leaves the old ``path`` or the new one, never a torn file, and
    no temporary file behind (unless the process is killed outright).
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".ckpt-", suffix=suffix, dir=directory)
    try:
        if mode is not None:
            os.chmod(tmp, mode)
        with os.fdopen(fd, "wb" if binary else "w") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _save(path: str, state: dict, arrays: dict[str, np.ndarray]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    payload = dict(arrays)
    text = json.dumps({"format_version": FORMAT_VERSION, **state}, sort_keys=True)
    payload["__state_json__"] = np.array(text)
    _replace_atomically(path, lambda handle: np.savez(handle, **payload), binary=True,
                        suffix=".npz")
    side = json.dumps(json.loads(text), indent=1, sort_keys=True)
    _replace_atomically(os.path.splitext(path)[0] + ".json", lambda handle: handle.write(side),
                        binary=False, suffix=".json")


def load(path: str) -> tuple[dict, dict[str, np.ndarray]]:
    """Reads what :func:`save` wrote: ``(state, arrays)``."""
    if not zipfile.is_zipfile(path):  # np.load would call it "pickled data"
        raise CheckpointError(f"{path}: not an azero_jax checkpoint (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k != "__state_json__"}
            state = json.loads(str(data["__state_json__"]))
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise CheckpointError(f"{path}: not a readable azero_jax checkpoint ({error})") from None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        version = state.get("format_version") if isinstance(state, dict) else None
        raise CheckpointError(f"{path}: checkpoint format {version}, but this azero_jax reads "
                              f"format {FORMAT_VERSION} (an older version wrote it); start over "
                              "with another --checkpoint_dir")
    return state, arrays


# --------------------------------------------------------------------------------------
# Algorithms <-> arrays.


def pack_algorithms(algorithms, prefix: str) -> dict[str, np.ndarray]:
    """Flattens algorithms (Algorithms or a Programs batch) into per-field arrays plus
    ``[N, 3]`` sizes (no pickle needed)."""
    if isinstance(algorithms, Programs):
        flat, _ = algorithms.flat()
        out = {f"{prefix}_sizes": algorithms.size.astype(np.int64)}
        for field in _FIELDS:
            out[f"{prefix}_{field}"] = np.ascontiguousarray(flat[field])
        return out
    sizes = np.array([a.sizes for a in algorithms], dtype=np.int64).reshape(-1, 3)
    # Filling one preallocated array: np.concatenate of many structured arrays promotes
    # their fields once per part and made island checkpoints cost more than the search.
    flat = np.empty(int(sizes.sum()), dtype=INSTRUCTION_DTYPE)
    pos = 0
    for algorithm in algorithms:
        for component in algorithm.components:
            end = pos + len(component)
            flat[pos:end] = component
            pos = end
    out = {f"{prefix}_sizes": sizes}
    for field in _FIELDS:
        out[f"{prefix}_{field}"] = np.ascontiguousarray(flat[field])
    return out


def unpack_algorithms(arrays, prefix: str) -> list[Algorithm]:
    """Inverse of :func:`pack_algorithms`."""
    sizes = arrays[f"{prefix}_sizes"]
    flat = np.zeros(int(sizes.sum()), dtype=INSTRUCTION_DTYPE)
    for field in _FIELDS:
        flat[field] = arrays[f"{prefix}_{field}"]
    out, pos = [], 0
    for row in sizes:
        parts = []
        for size in row:
            parts.append(flat[pos:pos + int(size)].copy())
            pos += int(size)
        out.append(Algorithm(*parts))
    return out


def unpack_programs(arrays, prefix: str) -> Programs:
    """What :func:`pack_algorithms` wrote, as a :class:`~azero_jax.core.population.Programs`."""
    sizes = np.asarray(arrays[f"{prefix}_sizes"], dtype=np.int64).reshape(-1, 3)
    batch = Programs.zeros(len(sizes), max(int(sizes.max(initial=0)) + 1, 1))
    batch.size[:] = sizes
    mask = batch.valid_mask()
    for field in _FIELDS:
        values = np.asarray(arrays[f"{prefix}_{field}"])
        if values.shape != (int(mask.sum()),):
            raise ValueError(f"checkpoint field {prefix}_{field} has {values.shape[0]} entries, "
                             f"its sizes say {int(mask.sum())}")
        getattr(batch, field)[mask] = values
    return batch


def algorithm_to_json(algorithm: Algorithm) -> dict:
    """An algorithm as JSON-able lists, exactly (the text format keeps 6 digits only).

    Example:
        >>> from azero_jax.core import generator
        >>> a = generator.linear_model(0.0123456789)
        >>> b = algorithm_from_json(algorithm_to_json(a))
        >>> bool(b.setup["d"][0] == a.setup["d"][0])
        True
    """
    packed = pack_algorithms([algorithm], "a")
    return {field: packed[f"a_{field}"].tolist() for field in ("sizes", *_FIELDS)}


def algorithm_from_json(data: dict) -> Algorithm:
    """Inverse of :func:`algorithm_to_json`."""
    arrays = {"a_sizes": np.asarray(data["sizes"], dtype=np.int64).reshape(-1, 3)}
    for field in _FIELDS:
        arrays[f"a_{field}"] = np.asarray(data[field], dtype=INSTRUCTION_DTYPE[field])
    return unpack_algorithms(arrays, "a")[0]


def rng_state_to_json(state) -> list:
    version, internal, gauss_next = state
    return [version, list(internal), gauss_next]


def rng_state_from_json(data) -> tuple:
    return (data[0], tuple(data[1]), data[2])


# --------------------------------------------------------------------------------------
# Search state.


def search_state(search) -> tuple[dict, dict[str, np.ndarray]]:
    """``(json_state, arrays)`` of a :class:`~azero_jax.evolution.regularized_evolution.Search`.

    The random streams are keyed by individual numbers, so the counters are the whole
    generator state.
    """
    count = search.population_size if search.initialized else search.next_slot
    arrays = pack_algorithms(search.programs.take(np.arange(count)), "population")
    arrays["fitness"] = search.fitness.copy()
    arrays["stage_fitness"] = search.stage_fitness.copy()
    arrays["fully_evaluated"] = search.fully_evaluated.copy()
    arrays["birth"] = search.birth.copy()
    if search.best_ever_programs is not None:
        arrays.update(pack_algorithms(search.best_ever_programs[0], "best_ever"))
    if search.fec is not None:
        arrays.update(search.fec.to_arrays())
    arrays.update(search.stage_memo.to_arrays())
    best = search.best_ever
    state = {
        "seed": search.seed,
        "population_size": search.population_size,
        "child_batch_size": search.child_batch_size,
        "random_search": search.random_search,
        "num_individuals": search.num_individuals,
        "train_steps": search.train_steps,
        "next_slot": search.next_slot,
        "initialized": search.initialized,
        "elapsed_secs": search.elapsed_secs,
        "last_printed": search.last_printed,
        "fec_saved_train_steps": search.fec_saved_train_steps,
        "fec_probe_train_steps": search.fec_probe_train_steps,
        "budget_rejections": search.budget_rejections,
        "hurdle_stats": search.hurdle_stats.to_dict(),
        "best_ever_fitness": None if best is None else best[1],
        "best_ever_text": None if best is None else format_algorithm(best[0]),
    }
    return state, arrays


def load_search_state(search, state: dict, arrays) -> None:
    """Restores :func:`search_state` into a freshly built search with the same spec."""
    if state["population_size"] != search.population_size:
        raise ValueError(f"checkpoint has population_size {state['population_size']}, the spec "
                         f"{search.population_size}")
    for name in ("seed", "child_batch_size", "random_search"):
        if state[name] != getattr(search, name):
            raise ValueError(f"checkpoint was written with {name}={state[name]!r}, this run has "
                             f"{getattr(search, name)!r}; resume with the same flags")
    search.reset()
    population = unpack_programs(arrays, "population")
    search.programs.put(np.arange(len(population)), population)
    search.fitness[:] = arrays["fitness"]
    search.stage_fitness[:] = arrays["stage_fitness"]
    search.fully_evaluated[:] = arrays["fully_evaluated"]
    search.birth[:] = arrays["birth"]
    for name in ("num_individuals", "train_steps", "next_slot", "initialized", "last_printed",
                 "fec_saved_train_steps", "fec_probe_train_steps", "budget_rejections"):
        setattr(search, name, state[name])
    search.elapsed_before = float(state["elapsed_secs"])
    search.hurdle_stats = HurdleStats(**state["hurdle_stats"])
    if state["best_ever_fitness"] is not None:
        search.restore_best_ever(unpack_programs(arrays, "best_ever"), state["best_ever_fitness"])
    search.stage_memo.load_arrays(arrays)
    if search.fec is not None and "fec_key_hi" in arrays:
        search.fec.load_arrays(arrays)


__all__ = ["save", "load", "signals_deferred", "write_json_atomic", "pack_algorithms",
           "unpack_algorithms", "unpack_programs", "algorithm_to_json", "algorithm_from_json",
           "search_state",
           "load_search_state", "COMPONENTS"]
