"""Plots of search progress (like the paper's Figure 6) and learning curves of algorithms.

The search writes a metrics log: one JSON object per line with the keys
``individuals, elapsed_secs, train_steps, mean_fitness, stdev_fitness, best_fitness,
fec_hit_rate, hurdle, individuals_per_sec, train_steps_per_sec``.
:func:`read_metrics` loads it into arrays, :func:`plot_progress` draws best and mean
fitness against individuals and against time, :func:`learning_curve` runs an algorithm on
a task with the exported JAX functions and records its per-step training error and its
validation fitness every few steps, and :func:`notebook_progress` gives a search a live
progress display in a notebook (or a terminal).

matplotlib is an optional extra (``pip install azero_jax[plot]``); it is imported only
when a plot is drawn.

Example:
    >>> import json, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "metrics.jsonl")
    >>> with open(path, "w") as f:
    ...     for i in range(3):
    ...         print(json.dumps({"individuals": 100 * i, "elapsed_secs": i, "best_fitness": 0.5,
    ...                           "mean_fitness": 0.2}), file=f)
    >>> read_metrics(path)["individuals"].tolist()
    [0, 100, 200]
"""

from __future__ import annotations

import json
import os
import sys
from typing import Callable, Iterable, Sequence

import numpy as np

from azero_jax.core.results import MAX_ABS_ERROR

METRIC_KEYS = ("individuals", "elapsed_secs", "train_steps", "mean_fitness", "stdev_fitness",
               "best_fitness", "fec_hit_rate", "hurdle", "individuals_per_sec",
               "train_steps_per_sec")


def _pyplot():
    try:
        import matplotlib
        if "ipykernel" not in sys.modules and not os.environ.get("MPLBACKEND"):
            matplotlib.use("Agg")  # no display needed outside notebooks
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plotting needs matplotlib, an optional extra: "
                          "pip install 'azero_jax[plot]' (or pip install matplotlib)") from None
    return plt


def read_metrics(source: str | os.PathLike | Iterable[dict]) -> dict[str, np.ndarray]:
    """Loads a metrics log (a JSON-lines path, or records) into float arrays per key.

    Missing values (e.g. ``hurdle`` without hurdles) become NaN. Records from several
    experiments appended to one file are kept in file order; see :func:`split_runs`.

    Raises:
      ValueError: naming the line that is not a JSON object.
    """
    if isinstance(source, (str, os.PathLike)):
        records = []
        with open(source) as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{source}:{number}: not JSON ({error})") from None
                if not isinstance(record, dict):
                    raise ValueError(f"{source}:{number}: expected a JSON object")
                records.append(record)
    else:
        records = list(source)
    keys = list(METRIC_KEYS) + sorted({k for r in records for k in r} - set(METRIC_KEYS))
    out = {}
    for key in keys:
        values = [r.get(key) for r in records]
        if all(isinstance(v, (int, float, type(None))) for v in values):
            out[key] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            if key in ("individuals", "train_steps") and np.all(np.isfinite(out[key])):
                out[key] = out[key].astype(np.int64)
        else:
            out[key] = np.array(values, dtype=object)
    return out


def split_runs(metrics: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Splits a log holding several experiments (``individuals`` restarts) into runs."""
    individuals = np.asarray(metrics["individuals"], dtype=np.float64)
    if len(individuals) == 0:
        return []
    starts = [0] + [i for i in range(1, len(individuals)) if individuals[i] < individuals[i - 1]]
    ends = starts[1:] + [len(individuals)]
    return [{k: v[s:e] for k, v in metrics.items()} for s, e in zip(starts, ends)]


def plot_progress(source, axes=None, title: str | None = None, label: str | None = None):
    """Best and mean fitness against individuals (left) and wall-clock time (right).

    Args:
      source: a metrics-log path, records, or the dict of :func:`read_metrics`.
      axes: two matplotlib axes to draw on (default: a new 1x2 figure).
      title: figure title.
      label: legend prefix (useful when overlaying runs on the same axes).

    Returns:
      The matplotlib figure.
    """
    plt = _pyplot()
    metrics = source if isinstance(source, dict) else read_metrics(source)
    if len(metrics.get("individuals", [])) == 0:
        raise ValueError("the metrics log is empty")
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    else:
        fig = axes[0].figure
    prefix = f"{label}: " if label else ""
    for ax, x_key, x_label in ((axes[0], "individuals", "individuals evaluated"),
                               (axes[1], "elapsed_secs", "time (s)")):
        x = metrics[x_key]
        best, mean = metrics["best_fitness"], metrics["mean_fitness"]
        line, = ax.plot(x, best, label=prefix + "best fitness", linewidth=2)
        ax.plot(x, mean, label=prefix + "mean fitness", color=line.get_color(), linestyle="--")
        stdev = metrics.get("stdev_fitness")
        if stdev is not None and np.any(np.isfinite(stdev)):
            # Fitness lies in [0, 1]: clip the +-1 stdev band to it.
            ax.fill_between(x, np.clip(mean - stdev, 0, 1), np.clip(mean + stdev, 0, 1),
                            color=line.get_color(), alpha=0.12, label=prefix + "mean ± stdev")
        hurdle = metrics.get("hurdle")
        if hurdle is not None and np.any(np.isfinite(hurdle)):
            ax.plot(x, hurdle, label=prefix + "hurdle", color=line.get_color(), linestyle=":")
        ax.set_xlabel(x_label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fitness")
    axes[0].legend(loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def notebook_progress(every_secs: float = 0.0, out=None) -> Callable[[dict], None]:
    """A ``progress_fn`` for :class:`azero_jax.evolution.regularized_evolution.Search`: a live
    one-line display.

    In a notebook it updates one output line in place (IPython display handle);
    elsewhere it prints a line per report to ``out`` (default stdout).

    Example:
        >>> report = notebook_progress(out=sys.stdout)
        >>> report({"individuals": 10, "elapsed_secs": 1.0, "best_fitness": 0.5,
        ...         "mean_fitness": 0.25, "individuals_per_sec": 10.0})
        indivs=10, elapsed_secs=1.0, best=0.5000, mean=0.2500, 10 indivs/s
    """
    state = {"handle": None, "last": -float("inf")}
    in_notebook = "ipykernel" in sys.modules and out is None

    def report(record: dict) -> None:
        elapsed = float(record.get("elapsed_secs", 0.0))
        if elapsed - state["last"] < every_secs:
            return
        state["last"] = elapsed
        text = (f"indivs={record.get('individuals')}, elapsed_secs={elapsed:.1f}, "
                f"best={record.get('best_fitness', float('nan')):.4f}, "
                f"mean={record.get('mean_fitness', float('nan')):.4f}, "
                f"{record.get('individuals_per_sec', 0.0):.0f} indivs/s")
        if record.get("fec_hit_rate"):
            text += f", FEC hits {100 * record['fec_hit_rate']:.0f}%"
        if in_notebook:
            from IPython.display import display
            if state["handle"] is None:
                state["handle"] = display(text, display_id=True)
            else:
                state["handle"].update(text)
        else:
            print(text, file=out or sys.stdout, flush=True)

    return report


# ----------------------------------------------------------------------------------
# Learning curves.


def learning_curve(algorithm, task, every: int = 10, key=None,
                   max_abs_error: float = MAX_ABS_ERROR, dtype: str = "float32",
                   max_steps: int | None = None) -> dict:
    """Trains ``algorithm`` on ``task`` (exported JAX functions) and records its progress.

    Training follows the harness (Setup, then Predict+Learn over the epochs' orders,
    stopping at a NaN or too large error). Every ``every`` steps the validation fitness
    is measured on a *copy* of the memory, so measuring does not change training (the
    reference's harness, which validates once per epoch, carries validation's memory
    writes on; use :func:`azero_jax.analysis.export.run_task` for the exact fitness).

    Returns:
      ``{"step": [n], "train_error": [n], "eval_step": [k], "valid_fitness": [k],
      "aborted": bool}``.
    """
    import jax

    from azero_jax.analysis import export as export_lib

    if int(every) < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    model = (algorithm if isinstance(algorithm, export_lib.ExportedAlgorithm)
             else export_lib.export_for_task(algorithm, task, dtype))
    train_block, _ = export_lib._scan_fns(model)
    key = jax.random.key(0) if key is None else key
    init_key, train_key, valid_key = jax.random.split(key, 3)
    state = model.init(init_key)
    order = np.concatenate([task.train_orders[e] for e in range(task.num_epochs)])
    if max_steps is not None:
        order = order[:int(max_steps)]
    errors, eval_steps, fitnesses, aborted = [], [], [], False

    def evaluate(step):
        _, fitness, _ = export_lib.validate(model, state, task,
                                            jax.random.fold_in(valid_key, step), max_abs_error)
        eval_steps.append(step)
        fitnesses.append(fitness)

    evaluate(0)
    for start in range(0, len(order), every):
        chunk = order[start:start + every]
        xs = np.asarray(task.x_train[chunk], model.dtype)
        ys = np.asarray(task.y_train[chunk], model.dtype)
        if len(chunk) < every:  # pad to one compiled shape; padded steps are discarded
            pad = every - len(chunk)
            xs = np.concatenate([xs, np.repeat(xs[-1:], pad, 0)])
            ys = np.concatenate([ys, np.repeat(ys[-1:], pad, 0)])
        with export_lib._x64(model.dtype):
            new_state, (_, chunk_errors) = train_block(state, xs, ys, train_key, start)
        chunk_errors = np.asarray(chunk_errors, dtype=np.float64)[:len(chunk)]
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero(np.isnan(chunk_errors) | (chunk_errors > max_abs_error))
        if len(bad):
            errors.extend(chunk_errors[:bad[0] + 1])
            aborted = True
            break
        if len(chunk) < every:
            # Re-run the short tail exactly (the padded run trained on repeated examples).
            with export_lib._x64(model.dtype):
                new_state, _ = train_block(state, xs[:len(chunk)], ys[:len(chunk)], train_key,
                                           start)
        errors.extend(chunk_errors)
        state = new_state
        evaluate(start + len(chunk))
    return {"step": np.arange(1, len(errors) + 1), "train_error": np.asarray(errors),
            "eval_step": np.asarray(eval_steps), "valid_fitness": np.asarray(fitnesses),
            "aborted": aborted}


def plot_learning_curve(curves: dict | Sequence[tuple[str, dict]], axes=None,
                        smooth: int = 20, title: str | None = None):
    """Plots one or several :func:`learning_curve` results (training error and validation).

    Args:
      curves: a curve, or ``[(label, curve), ...]`` to overlay.
      axes: two axes (default: a new 1x2 figure).
      smooth: moving-average window of the per-step training error.
    """
    plt = _pyplot()
    if isinstance(curves, dict):
        curves = [("algorithm", curves)]
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    else:
        fig = axes[0].figure
    for label, curve in curves:
        error = np.asarray(curve["train_error"], dtype=np.float64)
        window = max(1, min(int(smooth), len(error)))
        if len(error):
            smoothed = np.convolve(error, np.ones(window) / window, mode="valid")
            axes[0].plot(curve["step"][window - 1:], smoothed, label=label)
        axes[1].plot(curve["eval_step"], curve["valid_fitness"], marker="o", markersize=3,
                     label=label)
    axes[0].set_xlabel("training step")
    axes[0].set_ylabel(f"training error (moving average of {smooth})")
    axes[0].set_yscale("log")
    axes[1].set_xlabel("training step")
    axes[1].set_ylabel("validation fitness")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


__all__ = ["METRIC_KEYS", "learning_curve", "notebook_progress", "plot_learning_curve",
           "plot_progress", "read_metrics", "split_runs"]
