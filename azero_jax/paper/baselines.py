"""Hand-designed baselines trained with optax: logistic regression and a 2-layer ReLU network.

These give the paper's "linear success" and "NN success" thresholds (Tables S2, S5) and
the baselines of the final evaluation (S7). They are trained exactly as AutoML-Zero
evaluates an algorithm (spec §4): one example at a time (SGD, batch size 1), in each
task's epoch orders (``Task.train_orders``), validation after every epoch, accuracy =
the best over epochs. Scalar-label tasks use the sigmoid cross-entropy (the gradient the
reference's hand-coded ``LinearModel`` and ``NeuralNet`` compute); one-hot ``[n, K]``
labels use a K-way softmax cross-entropy.

Hyperparameters are tuned by the same random search the final evaluation applies to an
algorithm's constants: each base value is scaled by a log-uniform factor in
``[1e-3, 1e3]`` (trial 0 keeps the base values). Base values are those of the
reference's hand-coded models: learning rate 0.01, initial weight scales 0.1.

Everything for one model runs as one jitted ``vmap`` over (trial, task) pairs of a
``lax.scan`` over training steps, so a whole random search is one compile per shape.

Example:
    >>> import numpy as np
    >>> from azero_jax.core import tasks
    >>> from azero_jax.paper import baselines
    >>> rng = np.random.RandomState(0)
    >>> x = rng.randn(300, 4); y = (x @ [1., -2., .5, 0.] > 0).astype(float)
    >>> task = tasks.Task.from_arrays(x[:200], y[:200], x[200:], y[200:], eval_type="accuracy")
    >>> acc = baselines.train_and_evaluate("linear", [task], [baselines.Hyperparameters(0.1)])
    >>> bool(acc[0, 0] > 0.9)
    True
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from azero_jax.core.tasks import ACCURACY, Task

MODELS = ("linear", "nn")
MEMORY_BUDGET = 8e9  # bytes of parameters and their temporaries per device call
TUNING_RANGE = (1e-3, 1e3)


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
    """One baseline configuration.

    Attributes:
      learning_rate: SGD step size.
      init_scale: std of the first-layer weights (NN) -- the linear model starts at 0.
      final_init_scale: std of the NN's output-layer weights.
    """

    learning_rate: float = 0.01
    init_scale: float = 0.1
    final_init_scale: float = 0.1

    def __post_init__(self):
        for name in ("learning_rate", "init_scale", "final_init_scale"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"Hyperparameters.{name} must be finite and >= 0, got {value}")


def sample_hyperparameters(model: str, num_trials: int, seed: int = 0,
                           base: Hyperparameters = Hyperparameters(),
                           factor_range: tuple[float, float] = TUNING_RANGE
                           ) -> list[Hyperparameters]:
    """Random-search trials: base values times log-uniform factors (trial 0 = the base).

    The linear model tunes only the learning rate; the NN tunes all three values.
    """
    _check_model(model)
    if num_trials < 1:
        raise ValueError(f"num_trials must be >= 1, got {num_trials}")
    rng = np.random.RandomState(seed)
    low, high = np.log(factor_range[0]), np.log(factor_range[1])
    trials = [base]
    for _ in range(num_trials - 1):
        factors = np.exp(rng.uniform(low, high, size=3))
        if model == "linear":
            factors[1:] = 1.0
        trials.append(Hyperparameters(float(base.learning_rate * factors[0]),
                                      float(base.init_scale * factors[1]),
                                      float(base.final_init_scale * factors[2])))
    return trials


def _check_model(model):
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")


def _group_key(task: Task):
    return (task.features_size, task.num_epochs, task.label_size)


def _bucket(n: int) -> int:
    """Pads example counts to a few sizes (powers of 2 and 1.5x them) to share compiles."""
    size = 8
    while size < n:
        size = size * 3 // 2 if size & (size - 1) == 0 else size * 4 // 3
    return size


_COMPILED: dict = {}


def _trainer(model: str, F: int, n_train: int, n_valid: int, epochs: int, K: int, hidden: int,
             bias: bool, x64: bool):
    """A jitted ``(lr[B], s1[B], s2[B], key[B], data...) -> acc[B]`` for one padded shape.

    Orders are padded with -1 (a skipped step) and validation rows with a 0 mask.
    """
    key = (model, F, n_train, n_valid, epochs, K, hidden, bias, x64)
    if key in _COMPILED:
        return _COMPILED[key]
    import jax
    import jax.numpy as jnp
    import optax

    outputs = max(K, 1)

    def init(k, s1, s2, dtype):
        k1, k2 = jax.random.split(k)
        if model == "linear":
            return {"w": jnp.zeros((F, outputs), dtype), "b": jnp.zeros((outputs,), dtype)}
        return {"w1": s1 * jax.random.normal(k1, (F, hidden), dtype),
                "b1": jnp.zeros((hidden,), dtype),
                "w2": s2 * jax.random.normal(k2, (hidden, outputs), dtype),
                "b2": jnp.zeros((outputs,), dtype)}

    def logits(params, x):
        if model == "linear":
            out = x @ params["w"]
            return out + params["b"] if bias else out
        h = jax.nn.relu(x @ params["w1"] + (params["b1"] if bias else 0.0))
        out = h @ params["w2"]
        return out + params["b2"] if bias else out

    def loss(params, x, y):
        z = logits(params, x)
        if K:
            return optax.softmax_cross_entropy(z, y)
        return optax.sigmoid_binary_cross_entropy(z[0], y)

    def correct(params, x, y):
        z = logits(params, x)
        if K:
            return jnp.argmax(z) == jnp.argmax(y)
        return (z[0] > 0) == (y > 0.5)

    def one(lr, s1, s2, k, x_train, y_train, x_valid, y_valid, valid_mask, orders):
        dtype = x_train.dtype
        params = init(k, s1.astype(dtype), s2.astype(dtype), dtype)
        optimizer = optax.inject_hyperparams(optax.sgd)(learning_rate=lr.astype(dtype))
        state = optimizer.init(params)
        n_valid_real = jnp.sum(valid_mask)

        def step(carry, i):
            params, state = carry
            j = jnp.maximum(i, 0)
            grads = jax.grad(loss)(params, x_train[j], y_train[j])
            updates, new_state = optimizer.update(grads, state, params)
            new_params = optax.apply_updates(params, updates)
            keep = i >= 0
            return jax.tree_util.tree_map(lambda new, old: jnp.where(keep, new, old),
                                          (new_params, new_state), (params, state)), None

        def epoch(carry, order):
            carry, _ = jax.lax.scan(step, carry, order)
            hits = jax.vmap(correct, (None, 0, 0))(carry[0], x_valid, y_valid)
            acc = jnp.sum(hits.astype(dtype) * valid_mask) / n_valid_real
            # A diverged model (NaN weights) predicts NaN logits: score it 0.
            finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v))
                                        for v in jax.tree_util.tree_leaves(carry[0])]))
            return carry, jnp.where(finite, acc, 0.0)

        _, accs = jax.lax.scan(epoch, (params, state), orders)
        return jnp.max(accs)

    fn = jax.jit(jax.vmap(one))
    _COMPILED[key] = fn
    return fn


def _padded(tasks, members, np_dtype):
    n_train = _bucket(max(tasks[t].num_train for t in members))
    n_valid = _bucket(max(tasks[t].num_valid for t in members))

    def pad(a, n):
        a = np.asarray(a, dtype=np_dtype)
        return np.concatenate([a, np.zeros((n - len(a),) + a.shape[1:], np_dtype)])

    x_train = np.stack([pad(tasks[t].x_train, n_train) for t in members])
    y_train = np.stack([pad(tasks[t].y_train, n_train) for t in members])
    x_valid = np.stack([pad(tasks[t].x_valid, n_valid) for t in members])
    y_valid = np.stack([pad(tasks[t].y_valid, n_valid) for t in members])
    mask = np.stack([pad(np.ones(tasks[t].num_valid), n_valid) for t in members])
    orders = np.stack([np.concatenate([tasks[t].train_orders,
                                       np.full((tasks[t].num_epochs, n_train - tasks[t].num_train),
                                               -1, np.int32)], axis=1) for t in members])
    return n_train, n_valid, [x_train, y_train, x_valid, y_valid, mask], orders


def train_and_evaluate(model: str, tasks: Sequence[Task], trials: Sequence[Hyperparameters],
                       seed: int = 0, hidden_size: int | None = None, bias: bool = True,
                       dtype: str = "float32", chunk: int = 256) -> np.ndarray:
    """Validation accuracy of every trial on every task: ``[len(trials), len(tasks)]``.

    Args:
      model: ``"linear"`` (logistic / softmax regression) or ``"nn"`` (one ReLU hidden layer).
      tasks: accuracy tasks (scalar 0/1 labels or one-hot ``[n, K]`` labels).
      trials: the hyperparameters to try.
      seed: seeds the NN's initial weights (``jax.random``; per trial and task).
      hidden_size: NN hidden units (default F, as the reference's hand-coded network).
      bias: learn biases (the reference's hand-coded linear model has none).
      dtype: ``"float32"`` or ``"float64"``.
      chunk: (trial, task) pairs per device call.
    """
    import jax
    import jax.numpy as jnp
    from azero_jax.backends.jax.jax_evaluator import x64_context

    _check_model(model)
    tasks, trials = list(tasks), list(trials)
    if not tasks or not trials:
        raise ValueError("train_and_evaluate needs at least one task and one trial")
    for task in tasks:
        if task.eval_type != ACCURACY:
            raise ValueError(f"baselines need accuracy tasks, {task.name!r} is {task.eval_type}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    x64 = dtype == "float64"
    out = np.zeros((len(trials), len(tasks)))
    groups: dict = {}
    for t, task in enumerate(tasks):
        groups.setdefault(_group_key(task), []).append(t)
    lr = np.array([h.learning_rate for h in trials])
    s1 = np.array([h.init_scale for h in trials])
    s2 = np.array([h.final_init_scale for h in trials])
    with x64_context(dtype):
        np_dtype = np.float64 if x64 else np.float32
        base_key = jax.random.PRNGKey(seed)
        for (F, epochs, K), members in groups.items():
            n_train, n_valid, data, orders = _padded(tasks, members, np_dtype)
            fn = _trainer(model, F, n_train, n_valid, epochs, K, int(hidden_size or F), bias, x64)
            pairs = [(a, j) for a in range(len(trials)) for j in range(len(members))]
            # Bound the parameters (+ gradients, updates, temporaries) held per call.
            hidden = int(hidden_size or F) if model == "nn" else max(K, 1)
            per_pair = 4 * (F * hidden + hidden * max(K, 1)) * (8 if x64 else 4)
            fits = max(1, int(MEMORY_BUDGET // per_pair))
            size = min(chunk, _bucket(len(pairs)), 1 << (fits.bit_length() - 1))
            for start in range(0, len(pairs), size):
                part = pairs[start:start + size]
                padded = part + [part[-1]] * (size - len(part))
                a_idx = np.array([p[0] for p in padded])
                j_idx = np.array([p[1] for p in padded])
                t_idx = np.array([tasks[members[j]].index for j in j_idx])
                keys = jax.vmap(lambda a, t: jax.random.fold_in(jax.random.fold_in(base_key, a), t))(
                    jnp.asarray(a_idx), jnp.asarray(t_idx))
                acc = fn(jnp.asarray(lr[a_idx], np_dtype), jnp.asarray(s1[a_idx], np_dtype),
                         jnp.asarray(s2[a_idx], np_dtype), keys,
                         *[jnp.asarray(d[j_idx]) for d in data], jnp.asarray(orders[j_idx]))
                acc = np.asarray(acc)[:len(part)]
                for (a, j), value in zip(part, acc):
                    out[a, members[j]] = value
    return out


@dataclasses.dataclass(frozen=True)
class TuningResult:
    """A random search's outcome.

    Attributes:
      model: ``"linear"`` or ``"nn"``.
      best: the hyperparameters with the highest mean validation accuracy.
      best_accuracy: that mean.
      trials: every trial tried, in order.
      accuracies: ``[trials, tasks]`` validation accuracies.
    """

    model: str
    best: Hyperparameters
    best_accuracy: float
    trials: tuple[Hyperparameters, ...]
    accuracies: np.ndarray


def tune(model: str, tasks: Sequence[Task], num_trials: int = 100, seed: int = 0,
         base: Hyperparameters = Hyperparameters(), **kwargs) -> TuningResult:
    """Random search over :func:`sample_hyperparameters`, scored by mean validation accuracy."""
    trials = sample_hyperparameters(model, num_trials, seed, base)
    acc = train_and_evaluate(model, tasks, trials, seed=seed, **kwargs)
    mean = acc.mean(axis=1)
    best = int(np.argmax(mean))
    return TuningResult(model, trials[best], float(mean[best]), tuple(trials), acc)


def success_thresholds(tune_tasks: Sequence[Task], eval_tasks: Sequence[Task],
                       num_trials: int = 100, seed: int = 0, **kwargs) -> dict[str, float]:
    """The "linear success" and "NN success" thresholds (Tables S2, S5).

    Each baseline is tuned on ``tune_tasks`` and its best configuration is evaluated on
    ``eval_tasks`` (e.g. T_select); returns ``{"linear": mean accuracy, "nn": ...}``.
    """
    out = {}
    for model in MODELS:
        result = tune(model, tune_tasks, num_trials, seed, **kwargs)
        out[model] = float(train_and_evaluate(model, eval_tasks, [result.best], seed=seed + 1,
                                              **kwargs).mean())
    return out


def _main(argv):  # python -m azero_jax.paper.baselines: the success thresholds on projected tasks
    from absl import flags

    from azero_jax.datasets import protocol
    from azero_jax.core.tasks import make_tasks

    del argv
    f = flags.FLAGS
    search = make_tasks(protocol.search_task_spec(f.dataset, f.dataset_dir, num_tasks=f.tune_tasks))
    select = make_tasks(protocol.select_task_spec(f.dataset, f.dataset_dir, num_tasks=f.eval_tasks))
    thresholds = success_thresholds(search, select, f.trials, f.seed)
    print(f"Success thresholds on projected binary {f.dataset} (F = 16): tuned on "
          f"{len(search)} T_search tasks with {f.trials} trials, evaluated on {len(select)} "
          f"T_select tasks: linear {thresholds['linear']:.4f}, NN {thresholds['nn']:.4f}")


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_string("dataset", "digits", "digits | mnist | fashion_mnist | cifar10.")
    flags.DEFINE_string("dataset_dir", None, "Reference dataset files or raw dataset files.")
    flags.DEFINE_integer("tune_tasks", 10, "T_search tasks to tune on.")
    flags.DEFINE_integer("eval_tasks", 100, "T_select tasks to evaluate on.")
    flags.DEFINE_integer("trials", 100, "Random-search trials per baseline.")
    flags.DEFINE_integer("seed", 0, "Random-search seed.")
    app.run(_main)
