r"""The paper's final evaluation (S7) of an algorithm file against tuned baselines.

Tunes every constant of the algorithm (const-set values, random-op parameters) by random
search with log-uniform factors in [1e-3, 1e3] on validation data, then evaluates it on
the dataset's test images with --num_seeds seeds, at full input dimension, next to a
logistic regression and a 2-layer ReLU network (optax SGD) tuned with the same number
of trials. Prints a markdown table; --output writes it (and --json the raw figures).

  azero-final-evaluation \
    --algorithm_file=azero_jax/algorithms/figure6.txt --dataset=digits \
    --num_seeds=5 --tuning_trials=100

(``azero-final-evaluation`` is the console script; ``python -m
azero_jax.cli.final_evaluation`` is the same; the default --algorithm_file is the Figure 6
algorithm shipped in the package.) Datasets other than digits need --dataset_dir: the
CIFAR-10 binary version (cifar-10-binary.tar.gz, unpacked), or the four MNIST /
Fashion-MNIST IDX files.
A missing or malformed file or a bad flag prints one line ``error: <message>`` and exits
with status 2, before any tuning starts.
"""

from __future__ import annotations

import os
import time

from absl import flags

import azero_jax as az
from azero_jax.cli import bundled, run_binary
from azero_jax.core.errors import ConfigError
from azero_jax.datasets import HELD_OUT_PAIRS, load_dataset
from azero_jax.evolution import run_checks
from azero_jax.paper import final_evaluation as fe

FLAGS = flags.FLAGS
flags.DEFINE_string("algorithm_file", bundled("algorithms", "figure6.txt"),
                    "Algorithm in the reference text format.")
flags.DEFINE_string("dataset", "digits", "digits | mnist | fashion_mnist | cifar10 | a .npz path.")
flags.DEFINE_string("dataset_dir", None, "Folder with the downloaded dataset files.")
flags.DEFINE_integer("num_seeds", 5, "Test evaluations (seeds 0..n-1).")
flags.DEFINE_integer("tuning_trials", 100, "Random-search trials per method.")
flags.DEFINE_integer("num_train", 8000, "Train examples per pair (80/20 of what there is if fewer).")
flags.DEFINE_integer("num_valid", 2000, "Validation examples per pair.")
flags.DEFINE_string("pairs", None, "Class pairs 'p-n,p-n,...' (default: the 9 held-out pairs).")
flags.DEFINE_enum("backend", "auto", ["auto", "jax", "cpu"], "Evaluator backend for the algorithm.")
flags.DEFINE_enum("dtype", "float32", ["float32", "float64"], "JAX backend precision.")
flags.DEFINE_integer("nn_hidden", None, "Hidden units of the NN baseline (default: F).")
flags.DEFINE_string("output", None, "Write the markdown table here.")
flags.DEFINE_string("json", None, "Append the raw results as one JSON line here.")
flags.DEFINE_integer("seed", 0, "Seed of the random searches and the tuning split.")


def _pairs(text):
    if not text:
        return HELD_OUT_PAIRS
    try:
        pairs = tuple(tuple(int(v) for v in item.split("-")) for item in text.split(","))
    except ValueError:
        pairs = ()
    if not pairs or any(len(p) != 2 or p[0] == p[1] or min(p) < 0 for p in pairs):
        raise ConfigError(f"--pairs must look like '4-6,3-5' (two different class ids a "
                          f"pair), got {text!r}")
    return pairs


def _check_flags() -> None:
    """Refuses, before any work, flags that would fail (or waste the run) later."""
    for name in ("num_seeds", "tuning_trials", "num_train", "num_valid"):
        if getattr(FLAGS, name) < 1:
            raise ConfigError(f"--{name} must be >= 1, got {getattr(FLAGS, name)}")
    if FLAGS.nn_hidden is not None and FLAGS.nn_hidden < 1:
        raise ConfigError(f"--nn_hidden must be >= 1, got {FLAGS.nn_hidden}")
    run_checks.check_writable_file(FLAGS.output, "--output")
    run_checks.check_writable_file(FLAGS.json, "--json")


def _read_algorithm(path: str):
    if os.path.isdir(path):
        raise ConfigError(f"--algorithm_file={path} is a folder, expected a file")
    if not os.path.exists(path):
        raise ConfigError(f"--algorithm_file={path}: no such file")
    with open(path) as f:
        try:
            text = f.read()
        except UnicodeDecodeError:
            raise ConfigError(f"--algorithm_file={path}: not a text file") from None
    try:
        return az.parse_algorithm(text)
    except az.ParseError as error:
        raise ConfigError(f"--algorithm_file={path}: {error}") from None


def main(argv):
    del argv
    _check_flags()
    pairs = _pairs(FLAGS.pairs)
    algorithm = _read_algorithm(FLAGS.algorithm_file)
    dataset = load_dataset(FLAGS.dataset, FLAGS.dataset_dir)
    start = time.time()
    rows = fe.run_final_evaluation(
        algorithm, dataset, pairs, num_seeds=FLAGS.num_seeds, tuning_trials=FLAGS.tuning_trials,
        num_train=FLAGS.num_train, num_valid=FLAGS.num_valid, backend=FLAGS.backend,
        dtype=FLAGS.dtype, algorithm_name=os.path.basename(FLAGS.algorithm_file),
        nn_hidden_size=FLAGS.nn_hidden, seed=FLAGS.seed)
    elapsed = time.time() - start
    tasks = fe.pair_tasks(dataset, pairs, FLAGS.num_train, FLAGS.num_valid)
    header = (f"Final evaluation on {dataset.name} at full dimension F = {dataset.features_size}"
              f"{' (digits: 227 train / 56 valid images a pair for tuning, 71 test images a pair; a smoke test, not a paper figure)' if dataset.name == 'digits' else ''}.\n"
              f"Pairs {', '.join(f'{p}/{n}' for p, n in pairs)}; per pair {tasks[0].num_train} train / "
              f"{tasks[0].num_valid} valid examples (first pair); {FLAGS.tuning_trials} tuning trials "
              f"per method; {FLAGS.num_seeds} test seeds; backend {FLAGS.backend}; {elapsed:.0f} s.\n")
    table = fe.format_table(rows, header)
    tuned = "\n".join(f"- {row.name}: " + ", ".join(f"{k} = {v:.4g}" for k, v in row.tuned.items())
                      for row in rows)
    text = f"{table}\n\nTuned values:\n{tuned}\n"
    print(text)
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            f.write(text)
    if FLAGS.json:
        with open(FLAGS.json, "a") as f:
            f.write(fe.results_json(rows, dataset=dataset.name, algorithm_file=FLAGS.algorithm_file,
                                    num_seeds=FLAGS.num_seeds, tuning_trials=FLAGS.tuning_trials,
                                    backend=FLAGS.backend, full_dimension=dataset.features_size,
                                    seconds=elapsed) + "\n")


def run() -> None:
    """The ``azero-final-evaluation`` console script: absl parses ``sys.argv``."""
    run_binary(main, __name__)


if __name__ == "__main__":
    run()
