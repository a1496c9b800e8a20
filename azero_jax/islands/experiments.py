"""The experiments loop with islands, and the binary's island flags.

Holds :func:`run_experiments`: the reference's experiments loop where each experiment is
a run of islands, with its own resumable ``islands_run.json``. The search binary turns
its island flags into an :class:`~azero_jax.islands.config.IslandsConfig` and calls it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random as random_lib
import time
from typing import Callable

from azero_jax import checkpoint as checkpoint_lib
from azero_jax import run_checks
from azero_jax.errors import CheckpointError
from azero_jax.islands.config import IslandsConfig
from azero_jax.islands.island import checkpointed_individuals
from azero_jax.islands.progress import format_progress
from azero_jax.islands.run import run_islands
from azero_jax.program import Algorithm, format_algorithm, parse_algorithm
from azero_jax.spec import SearchSpec


def run_experiments(config, islands: IslandsConfig, log: Callable[[str], None] = print) -> dict:
    """The reference's experiments loop where each experiment is a run of islands.

    ``config`` is an :class:`azero_jax.experiment.ExperimentConfig`. Every island's best
    individual is evaluated on T_select and the best of them there is the experiment's
    candidate (islands on different task sets have incomparable search fitnesses); the
    loop keeps the best candidate as the single-population loop does, and the best is
    evaluated on T_final. The JSON
    summary adds an ``islands`` section (per-island counters, migrations, restarts).
    With ``checkpoint_dir``, island checkpoints of the running experiment live in
    ``checkpoint_dir/experiment_<n>/`` and the loop state in ``islands_run.json``; a
    restart resumes both, after checking that the folder is not in use, holds an
    islands run and was written with the same settings; a finished run only reports
    its result again.
    """
    from azero_jax import experiment as experiment_lib

    spec = experiment_lib.search_spec(config)
    experiment_lib.preflight(config, spec, islands)
    folder = config.checkpoint_dir
    with run_checks.FolderLock(folder) if folder else contextlib.nullcontext():
        run_checks.check_mode(folder, islands=True)
        return _run_experiments(config, islands, spec, log)


def _run_experiments(config, islands: IslandsConfig, spec: SearchSpec, log) -> dict:
    from azero_jax import experiment as experiment_lib

    fields = run_checks.resume_fields(config, spec, islands)
    if islands.checkpoint_every_secs is None:
        islands = islands.replace(checkpoint_every_secs=float(config.checkpoint_every_secs))
    seed = int(config.random_seed) or (time.time_ns() % (2**32 - 2)) + 1
    state = {"random_seed": seed, "num_experiments": 0, "experiments": [],
             "best_algorithm": None,  # exact (JSON lists): the text keeps 6 digits
             "best_select_fitness": None, "rng": None, "elapsed_secs": 0.0,
             "config_fields": fields, "finished": False}
    loop_path = None
    if config.checkpoint_dir:
        os.makedirs(config.checkpoint_dir, exist_ok=True)
        loop_path = os.path.join(config.checkpoint_dir, run_checks.ISLANDS_CHECKPOINT)
        if os.path.exists(loop_path):
            state = _read_run_state(loop_path)
            if config.random_seed and int(state["random_seed"]) != seed:
                raise CheckpointError(f"{loop_path} was written with --random_seed="
                                      f"{state['random_seed']}, this run has {seed}; use the "
                                      "same flags or another --checkpoint_dir")
            run_checks.check_resume(loop_path, state.get("config_fields"), fields)
            state["config_fields"] = fields
            seed = int(state["random_seed"])
            if state.get("finished"):
                log(f"Resumed islands run from {loop_path}: all {state['num_experiments']} "
                    "experiments were done.")
            else:
                log(f"Resumed islands run from {loop_path}: experiment "
                    f"{state['num_experiments'] + 1}.")
            experiment_lib.trim_metrics_log(
                config.metrics_log, int(state["num_experiments"]), checkpointed_individuals(
                    os.path.join(config.checkpoint_dir,
                                 f"experiment_{state['num_experiments']}")))
    if state["num_experiments"] == 0 and state["rng"] is None:
        log(f"Random seed = {seed}")
    rng = random_lib.Random(seed)
    if state["rng"] is not None:
        rng.setstate(checkpoint_lib.rng_state_from_json(state["rng"]))
    start = time.monotonic() - float(state["elapsed_secs"])
    interrupted = False
    stop_flag = experiment_lib._StopFlag()

    def save_loop(current=None):
        if loop_path is None:
            return
        state["rng"] = checkpoint_lib.rng_state_to_json(rng.getstate())
        state["elapsed_secs"] = time.monotonic() - start
        state["current"] = current
        checkpoint_lib.write_json_atomic(loop_path, state)

    def progress(record):
        log(format_progress(record))
        if config.metrics_log:
            os.makedirs(os.path.dirname(os.path.abspath(config.metrics_log)), exist_ok=True)
            with open(config.metrics_log, "a") as handle:
                handle.write(json.dumps({"experiment": state["num_experiments"], **record}) + "\n")

    last_result = None
    with stop_flag:
        while not state.get("finished"):
            current = state.get("current")
            if current is None:
                draw = lambda: rng.randrange(1, 2**31 - 1)  # noqa: E731
                current = {"search_seed": draw(), "search_task_seed": draw(),
                           "select_task_seed": draw(), "select_seed": draw()}
                save_loop(current)
            run_spec, run_islands_config = spec, islands
            if config.randomize_task_seeds:
                run_spec = spec.replace(search_tasks=experiment_lib.randomize_task_seeds(
                    spec.search_tasks, current["search_task_seed"]))
                run_islands_config = islands.replace(task_sets=tuple(
                    (name, experiment_lib.randomize_task_seeds(
                        specs, current["search_task_seed"] + k + 1))
                    for k, (name, specs) in enumerate(islands.task_sets)))
            directory = None
            if config.checkpoint_dir:
                directory = os.path.join(config.checkpoint_dir,
                                         f"experiment_{state['num_experiments']}")
            migration = (f"every {islands.migration_interval} children" if islands.migration
                         else "off")
            select_specs = config.select_tasks
            if config.randomize_task_seeds:
                select_specs = experiment_lib.randomize_task_seeds(select_specs,
                                                                   current["select_task_seed"])
            log(f"Running evolution experiment with {islands.num_islands} islands "
                f"({islands.parallel}, migration {migration})...")
            result = run_islands(run_spec, run_islands_config, memory=config.memory,
                                 seed=current["search_seed"], backend=config.backend,
                                 child_batch_size=config.child_batch_size,
                                 random_search=config.random_search,
                                 evaluator_options=dict(config.evaluator_options),
                                 checkpoint_dir=directory, max_individuals=config.max_individuals,
                                 progress_fn=progress, should_stop=lambda: stop_flag.requested,
                                 rank_tasks=select_specs, rank_seed=current["select_seed"])
            last_result = result
            if stop_flag.requested:
                interrupted = True
                save_loop(current)
                log("Interrupted: island checkpoints saved." if directory else "Interrupted.")
                log("Best algorithm so far:")
                log(format_algorithm(result.algorithm).rstrip("\n"))
                break
            log("Experiment done. Retrieving candidate algorithm.")
            log(f"Search fitness for candidate algorithm = {result.fitness:.6f} "
                f"(island {result.island})")
            # Every island's best was evaluated on T_select (with the experiment's select
            # seed, as evaluate_on_tasks would) to choose the candidate: that is its
            # select fitness.
            log("Evaluating candidate algorithm from experiment (on T_select tasks)... ")
            select = float(result.rank_fitness)
            log(f"Select fitness for candidate algorithm = {select:.6f}")
            record = {"experiment": state["num_experiments"], "search_fitness": result.fitness,
                      "select_fitness": select, **{k: v for k, v in result.to_json().items()
                                                   if k not in ("fitness",)}}
            if state["best_select_fitness"] is None or select >= state["best_select_fitness"]:
                state["best_algorithm"] = checkpoint_lib.algorithm_to_json(result.algorithm)
                state["best_select_fitness"] = select
                log("Select fitness is the best so far. ")
            state["experiments"].append(record)
            state["num_experiments"] += 1
            stop_now = (config.sufficient_fitness > 0 and
                        state["best_select_fitness"] > config.sufficient_fitness)
            if config.max_experiments and state["num_experiments"] >= config.max_experiments:
                stop_now = True
            state["finished"] = stop_now
            save_loop(None)
            state["current"] = None
            if stop_now:
                break
    final = None
    selected = _selected_algorithm(state)
    best = selected if selected is not None else (
        last_result.algorithm if last_result is not None else None)
    best_text = format_algorithm(best) if best is not None else None
    if not interrupted and config.final_tasks and selected is not None:
        final = experiment_lib.evaluate_on_tasks(
            selected, config.final_tasks, memory=config.memory,
            max_abs_error=spec.max_abs_error, seed=rng.randrange(1, 2**31 - 1),
            backend=config.backend, **dict(config.evaluator_options))
        log("")
        log("Final evaluation of best algorithm (on unseen tasks)...")
        log(f"Final evaluation fitness (on unseen data) = {final:.6f}")
    if not interrupted and best_text is not None:
        from azero_jax.experiment import log_found_algorithm
        log_found_algorithm(log, best)
    experiments = state["experiments"]
    summary = {
        "random_seed": seed, "num_experiments": state["num_experiments"],
        "interrupted": interrupted, "best_select_fitness": state["best_select_fitness"],
        "final_fitness": final, "elapsed_secs": time.monotonic() - start,
        "experiments": experiments, "best_algorithm": best_text,
        "memory": dataclasses.asdict(config.memory), "backend": config.backend,
        "child_batch_size": config.child_batch_size, "random_search": config.random_search,
        "islands": {
            "num_islands": islands.num_islands, "parallel": islands.parallel,
            "migration": islands.migration, "migration_interval": islands.migration_interval,
            "migration_fraction": islands.migration_fraction,
            "population_sizes": [c["population_size"] for c in last_result.islands]
            if last_result else [],
            "task_sets": [c["task_set"] for c in last_result.islands] if last_result else [],
            "migrations": sum(e["migrations"] for e in experiments) if experiments else
            (last_result.migrations if last_result else 0),
            "restarts": sum(e["restarts"] for e in experiments) if experiments else
            (last_result.restarts if last_result else 0),
        },
    }
    if experiments:
        best = max(experiments, key=lambda e: e["select_fitness"])
        summary["best_search_fitness"] = best["search_fitness"]
    if config.output_dir:
        os.makedirs(config.output_dir, exist_ok=True)
        with open(os.path.join(config.output_dir, "summary.json"), "w") as handle:
            json.dump(summary, handle, indent=1)
        if best_text is not None:
            with open(os.path.join(config.output_dir, "best_algorithm.txt"), "w") as handle:
                handle.write(best_text)
    return summary


def _read_run_state(path: str) -> dict:
    """``islands_run.json``, or :class:`CheckpointError` when it is not one."""
    try:
        with open(path) as handle:
            state = json.load(handle)
        int(state["random_seed"]), int(state["num_experiments"])
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: not a readable islands run state ({error}); start over "
                              "with another --checkpoint_dir") from None
    return state


def _selected_algorithm(state: dict) -> Algorithm | None:
    """The best candidate on T_select so far, from the islands run state."""
    if state.get("best_algorithm") is not None:
        return checkpoint_lib.algorithm_from_json(state["best_algorithm"])
    if state.get("best_text") is not None:  # a run file written before exact algorithms
        return parse_algorithm(state["best_text"])
    return None
