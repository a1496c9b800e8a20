r"""Runs AutoML-Zero search experiments: the reference's ``run_search_experiment``.

With no flags it runs the reference's run_demo.sh spec (``azero_jax/specs/demo_*``, shipped
in the package; memory 4/3/1) with a fixed seed and stops once a linear regressor is found
(select fitness > 0.9999). The reference's flags take the same text-format protos:

  azero-search \
    --search_experiment_spec="$(cat azero_jax/specs/linear_search.textproto)" \
    --select_tasks="$(cat azero_jax/specs/linear_select.textproto)" \
    --final_tasks="$(cat azero_jax/specs/linear_select.textproto)" \
    --random_seed=100021 --max_experiments=1

(``azero-search`` is the console script; ``python -m azero_jax.cli.run_search_experiment``
is the same.) A flag value that names an existing file is read from that file. Ctrl-C or
SIGTERM stops at the next step, saves a checkpoint (with --checkpoint_dir) and the summary, and
prints the best algorithm; a second one aborts (a save in progress still completes).
A mistake in the flags, specs, data or checkpoint folder prints one line
``error: <message>`` and exits with status 2.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from azero_jax import islands
from azero_jax.backends.evaluator import MemoryConfig
from azero_jax.cli import bundled, run_binary
from azero_jax.core.errors import AzeroError, ConfigError
from azero_jax.evolution import experiment
from azero_jax.spec.search_spec import (parse_hurdles, parse_search_experiment_spec,
                                        parse_task_collection)

DEMO_SEED = 1002  # the demo's fixed seed: solves in its first experiment

FLAGS = flags.FLAGS
flags.DEFINE_string("search_experiment_spec", None, "Text-format SearchExperimentSpec (or a "
                    "file). Default: the reference's run_demo.sh spec.")
flags.DEFINE_string("select_tasks", None, "Text-format TaskCollection for T_select (or a file).")
flags.DEFINE_string("final_tasks", None, "Text-format TaskCollection for T_final (or a file).")
flags.DEFINE_integer("random_seed", None, "Main seed; 0 = from the clock. Default: the demo's "
                     f"fixed seed {DEMO_SEED} with the demo spec, else 0.")
flags.DEFINE_integer("max_experiments", None, "0 = unlimited (demo default), reference default 1.")
flags.DEFINE_boolean("randomize_task_seeds", None, "Re-draw T_search/T_select seeds per "
                     "experiment (demo default true).")
flags.DEFINE_float("sufficient_fitness", None, "Stop once the best select fitness exceeds this "
                   "(demo default 0.9999).")
flags.DEFINE_integer("max_scalar_addresses", None, "Scalar memory size (demo 4, else 20).")
flags.DEFINE_integer("max_vector_addresses", None, "Vector memory size (demo 3, else 20).")
flags.DEFINE_integer("max_matrix_addresses", None, "Matrix memory size (demo 1, else 20).")
flags.DEFINE_enum("backend", "auto", ["auto", "cpu", "jax", "cuda"], "Evaluator backend.")
flags.DEFINE_integer("child_batch_size", None, "Children per step (1 = the reference's loop).")
flags.DEFINE_boolean("random_search", False, "Random search instead of evolution (the paper's "
                     "Figure 4 baseline): a random initial population of the spec's sizes, fresh "
                     "random algorithms, no FEC and no hurdles unless --random_search_fec / "
                     "--hurdles ask for them.")
flags.DEFINE_boolean("random_search_fec", False, "Keep the spec's FEC in a random search.")
flags.DEFINE_string("hurdles", None, "Text-format HurdlesSpec (e.g. 'num_tasks: 2'); sets or "
                    "overrides the spec's hurdles { }.")
flags.DEFINE_string("output_dir", None, "Writes summary.json and best_algorithm.txt here.")
flags.DEFINE_string("checkpoint_dir", None, "Periodic checkpoints; a restart resumes from them.")
flags.DEFINE_float("checkpoint_every_secs", 30.0, "Seconds between checkpoints.")
flags.DEFINE_string("metrics_log", None, "Appends progress figures as JSON lines.")
flags.DEFINE_integer("max_individuals", None, "Optional cap on individuals per experiment.")
flags.DEFINE_integer("num_islands", None, "Islands with migration (paper S3); any island flag "
                     "runs azero_jax.islands (see docs/islands.md). Default 4 with islands.")
flags.DEFINE_integer("migration_interval", None, "Evaluations of an island between migrations; "
                     "0 = migration off (default 10000).")
flags.DEFINE_float("migration_fraction", None, "Fraction of an island's population uploaded and "
                   "replaced per migration (default 0.5).")
flags.DEFINE_enum("parallel", None, ["batched", "processes", "ray"], "How islands run: batched in "
                  "one process, one worker process per core, or on Ray (default batched).")
flags.DEFINE_string("ray_address", None, "Ray cluster for --parallel=ray (default: a local Ray).")
flags.DEFINE_string("islands_config", None, "Islands config JSON file (per-island population "
                    "sizes and task sets, migration); flags override it.")


def _text(value: str | None, flag: str) -> str | None:
    """A spec flag's text: the value itself, or the file it names.

    A value without proto syntax (one line, no ``{`` and no ``:``) can only be a path,
    so a missing or unreadable file is said to be one instead of failing to parse.
    """
    if value is None:
        return None
    one_token = "\n" not in value and "{" not in value
    if one_token and (os.path.isfile(value) or (":" not in value and value.strip())):
        path = value.strip()
        if os.path.isdir(path):
            raise ConfigError(f"--{flag}={path} is a folder, expected a file or a text-format "
                              "proto")
        if not os.path.exists(path):
            raise ConfigError(f"--{flag}={path}: no such file (nor a text-format proto)")
        try:
            with open(path) as handle:
                return handle.read()
        except PermissionError:
            raise ConfigError(f"--{flag}={path}: permission denied") from None
        except UnicodeDecodeError:
            raise ConfigError(f"--{flag}={path}: not a text file") from None
    return value


def _spec_file(name: str) -> str:
    with open(bundled("specs", name)) as handle:
        return handle.read()


def config_from_flags() -> experiment.ExperimentConfig:
    """Flags -> :class:`azero_jax.evolution.experiment.ExperimentConfig`."""
    demo = FLAGS.search_experiment_spec is None
    if demo:
        search_text = _spec_file("demo_search.textproto")
        select_text = _text(FLAGS.select_tasks, "select_tasks") or \
            _spec_file("demo_select.textproto")
        final_text = _text(FLAGS.final_tasks, "final_tasks") or _spec_file("demo_final.textproto")
    else:
        search_text = _text(FLAGS.search_experiment_spec, "search_experiment_spec")
        if FLAGS.select_tasks is None or FLAGS.final_tasks is None:
            raise ConfigError("--select_tasks and --final_tasks are required with "
                              "--search_experiment_spec")
        select_text = _text(FLAGS.select_tasks, "select_tasks")
        final_text = _text(FLAGS.final_tasks, "final_tasks")

    def pick(value, demo_default, default):
        return value if value is not None else (demo_default if demo else default)

    hurdles = None if FLAGS.hurdles is None else parse_hurdles(FLAGS.hurdles)
    return experiment.ExperimentConfig(
        search=parse_search_experiment_spec(search_text),
        select_tasks=parse_task_collection(select_text, "select_tasks"),
        final_tasks=parse_task_collection(final_text, "final_tasks"),
        memory=MemoryConfig(pick(FLAGS.max_scalar_addresses, 4, 20),
                            pick(FLAGS.max_vector_addresses, 3, 20),
                            pick(FLAGS.max_matrix_addresses, 1, 20)),
        random_seed=pick(FLAGS.random_seed, DEMO_SEED, 0),
        max_experiments=pick(FLAGS.max_experiments, 0, 1),
        randomize_task_seeds=pick(FLAGS.randomize_task_seeds, True, False),
        sufficient_fitness=pick(FLAGS.sufficient_fitness, 0.9999, sys.float_info.max),
        backend=FLAGS.backend, child_batch_size=FLAGS.child_batch_size,
        random_search=FLAGS.random_search, random_search_fec=FLAGS.random_search_fec,
        hurdles=hurdles, output_dir=FLAGS.output_dir,
        checkpoint_dir=FLAGS.checkpoint_dir, checkpoint_every_secs=FLAGS.checkpoint_every_secs,
        metrics_log=FLAGS.metrics_log, max_individuals=FLAGS.max_individuals)


ISLAND_FLAGS = ("num_islands", "migration_interval", "migration_fraction", "parallel",
                "ray_address")


def islands_config_from_flags() -> islands.IslandsConfig | None:
    """The islands config the flags ask for (``--islands_config`` plus the island flags
    that override it), or None when no island flag is given (one population)."""
    overrides = {name: getattr(FLAGS, name) for name in ISLAND_FLAGS
                 if getattr(FLAGS, name) is not None}
    path = FLAGS.islands_config
    if path is None and not overrides:
        return None
    if path and not os.path.isfile(path):
        raise ConfigError(f"--islands_config={path}: " +
                          ("is a folder, expected a JSON file" if os.path.isdir(path)
                           else "no such file"))
    try:
        if path:
            return islands.load_islands_config(path, **overrides)
        return islands.IslandsConfig(**overrides)
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"--islands_config / island flags: {error}") from None


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        config = config_from_flags()
    except AzeroError:
        raise
    except ValueError as error:  # a value the spec's own classes refuse
        raise ConfigError(str(error)) from None
    log = lambda line: print(line, flush=True)  # noqa: E731
    experiment.run_experiments(config, log=log, islands=islands_config_from_flags())


def run() -> None:
    """The ``azero-search`` console script: absl parses ``sys.argv``."""
    run_binary(main, __name__)


if __name__ == "__main__":
    run()
