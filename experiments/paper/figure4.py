"""Paper Figure 4: how much more often evolution finds an acceptable algorithm than RS.

Runs ``--budget`` evaluations per method (random search and evolution) of one task type,
in experiments of S5's size (10 k individuals, 100 k for the affine regressor), and adds
their counts to ``<results_dir>/figure4_results.json``. Runs are additive: run it again
(or in several processes at once: the file is locked while it is updated and replaced
atomically) to refine the estimates. Settings and counting: see ``figure4_lib``.

Example (about a minute per 100 k evaluations per core)::

    python experiments/paper/figure4.py --task_type=linear_backprop --budget=200000 \
        --results_dir=docs --num_workers=2
    python experiments/paper/figure4.py --budget=0 --results_dir=docs \
        --plot=docs/paper_figure4.png        # summary and figure only
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import os
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import figure4_lib  # noqa: E402
import paper_common  # noqa: E402

RESULTS_NAME = "figure4_results.json"
SAVE_EVERY_SECS = 30.0
FORMAT = 1

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The flags (defined only when run as a program, so tests can import the module)."""
    flags.DEFINE_enum("task_type", "linear_backprop", sorted(figure4_lib.TASK_TYPES),
                      "The Figure 4 task type to measure.")
    flags.DEFINE_integer("budget", 100_000, "Evaluations per method added by this run (rounded up "
                         "to whole experiments; 0: only print the summary / plot).")
    flags.DEFINE_string("results_dir", "figure4_results", "Folder of the accumulated JSON.")
    flags.DEFINE_integer("num_workers", 1, "Processes (one core each); 0: in this process.")
    flags.DEFINE_string("plot", None, "Write the figure (PNG) of every measured task type here.")
    flags.DEFINE_boolean("table", False, "Print every measured task type as a Markdown table.")
    flags.DEFINE_integer("evals_per_experiment", None, "Override S5's experiment size (tests).")
    flags.DEFINE_integer("population_size", 1000, "Override S5's P = 1000 (tests).")
    flags.DEFINE_integer("num_train_examples", figure4_lib.NUM_TRAIN, "Override (tests).")


def settings(task_type: str, evals: int, population: int, num_train: int) -> dict:
    """What must match for two runs' counts to be added up."""
    kind = figure4_lib.TASK_TYPES[task_type]
    return {"task_type": task_type, "task": kind.task_type, "memory": list(kind.memory),
            "sizes": list(kind.sizes), "ops": [list(o) for o in kind.op_lists],
            "fixed_components": list(kind.fixed_components),
            **({"fixed_learn": kind.fixed_learn} if kind.fixed_learn else {}),
            "evals_per_experiment": evals, "population_size": population,
            "tournament_size": 10, "mutate_prob": 0.9,
            "mutation_types": list(figure4_lib.MUTATION_TYPES),
            "num_tasks": figure4_lib.NUM_TASKS, "features": figure4_lib.FEATURES,
            "num_train": num_train, "num_valid": figure4_lib.NUM_VALID,
            "reference_learning_rate": figure4_lib.LEARNING_RATE,
            "accept": f"mean RMS <= reference's * (1 + {figure4_lib.ACCEPT_RTOL})"}


def locked_results(results_dir: str):
    """The accumulated results, locked and atomically replaced (see paper_common)."""
    return paper_common.locked_json(os.path.join(results_dir, RESULTS_NAME),
                                    {"format": FORMAT, "task_types": {}})


def entry_for(data: dict, task_type: str, config: dict) -> dict:
    entry = data["task_types"].setdefault(task_type, {
        "settings": config, "next_index": {m: 0 for m in figure4_lib.METHODS},
        "experiments": {m: [] for m in figure4_lib.METHODS}})
    if entry["settings"] != config:
        raise ValueError(f"the results for {task_type} were made with other settings "
                         f"({entry['settings']}); use another --results_dir")
    return entry


def summarize(task_type: str, entry: dict) -> dict:
    """Rates, the ratio and their intervals from the accumulated experiments."""
    rs = entry["experiments"]["rs"]
    evo = entry["experiments"]["evolution"]
    n_rs = sum(r["evaluations"] for r in rs)
    k_rs = sum(r["successes"] for r in rs)
    m_ev = len(evo)
    s_ev = sum(r["successes"] for r in evo)
    n_ev = sum(r["evaluations"] for r in evo)
    size = entry["settings"]["evals_per_experiment"]
    rs_ci = paper_common.wilson(k_rs, n_rs)
    ev_ci = paper_common.wilson(s_ev, m_ev)
    out = {
        "task_type": task_type,
        "rs_evaluations": n_rs, "rs_acceptable": k_rs,
        "rs_rate": k_rs / n_rs if n_rs else None,
        "rs_rate_ci_low": rs_ci[0], "rs_rate_ci_high": rs_ci[1],
        "difficulty": n_rs / k_rs if k_rs else None,
        "evolution_experiments": m_ev, "evolution_successes": s_ev,
        "evolution_evaluations": n_ev,
        "evolution_rate": s_ev / n_ev if n_ev else None,
        "evolution_rate_ci_low": ev_ci[0] / size, "evolution_rate_ci_high": ev_ci[1] / size,
        "reference_learning_rate": entry["settings"]["reference_learning_rate"],
        "cpu_secs": round(sum(r["elapsed_secs"] for r in rs + evo), 1),
    }
    # Evolution's trials are experiments (one success at most each), RS's evaluations.
    out.update(paper_common.rate_ratio(s_ev, m_ev, k_rs, n_rs, scale_a=size))
    return out


def _fmt(x):
    if x is None:
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return f"{x:.3g}"


def progress_line(s: dict) -> str:
    return (f"{s['task_type']}: RS {s['rs_acceptable']}/{s['rs_evaluations']} = "
            f"{_fmt(s['rs_rate'])} [{_fmt(s['rs_rate_ci_low'])}, {_fmt(s['rs_rate_ci_high'])}]"
            f"; evolution {s['evolution_successes']}/{s['evolution_experiments']} expts "
            f"({s['evolution_evaluations']} evals) = {_fmt(s['evolution_rate'])} "
            f"[{_fmt(s['evolution_rate_ci_low'])}, {_fmt(s['evolution_rate_ci_high'])}]"
            f"; ratio {_fmt(s['ratio'])} [{_fmt(s['ratio_ci_low'])}, "
            f"{_fmt(s['ratio_ci_high'])}] ({s['ratio_ci_method']})")


def run(task_type: str, budget: int, results_dir: str, num_workers: int = 1,
        evals: int | None = None, population: int = 1000,
        num_train: int = figure4_lib.NUM_TRAIN, log=print) -> dict:
    """Adds ``budget`` evaluations per method to the results; returns the summary."""
    kind = figure4_lib.TASK_TYPES[task_type]
    evals = int(evals or kind.evals_per_experiment)
    config = settings(task_type, evals, population, num_train)
    count = -(-int(budget) // evals) if budget > 0 else 0
    # Claim experiment numbers first, so concurrent runs never repeat one; a run that
    # dies leaves a gap in the numbering, nothing else.
    with locked_results(results_dir) as data:
        entry = entry_for(data, task_type, config)
        claims = {}
        for method in figure4_lib.METHODS:
            start = entry["next_index"][method]
            claims[method] = list(range(start, start + count))
            entry["next_index"][method] = start + count
    log(f"{task_type}: reference = SGD, learning rate {figure4_lib.LEARNING_RATE}; "
        f"{count} experiment(s) of {evals} evaluations per method")
    jobs = [(task_type, method, index, evals, population, num_train)
            for pair in zip(claims["rs"], claims["evolution"])
            for method, index in zip(figure4_lib.METHODS, pair)]
    summary = summarize(task_type, entry)
    finished = []  # records not yet in the file
    last_save = time.monotonic()

    def save():
        nonlocal summary, last_save
        if finished:
            with locked_results(results_dir) as data:
                entry = entry_for(data, task_type, config)
                for record in finished:
                    entry["experiments"][record["method"]].append(record)
                summary = summarize(task_type, entry)
                data.setdefault("summary", {})[task_type] = summary
            finished.clear()
        last_save = time.monotonic()

    # Records are saved in batches: the file holds every experiment's record (megabytes
    # after a few thousand), and rewriting it for each one kept the main process as busy
    # as a worker. A stop saves what has finished; a kill loses at most SAVE_EVERY_SECS.
    try:
        for record in _results(jobs, num_workers):
            finished.append(record)
            if time.monotonic() - last_save >= SAVE_EVERY_SECS:
                save()
                log(progress_line(summary))
    finally:
        save()
    log(progress_line(summary))
    return summary


def _results(jobs, num_workers: int):
    """Each job's record as it finishes (in this process when ``num_workers`` is 0)."""
    if num_workers <= 0:
        yield from (_job(*job) for job in jobs)
        return
    if not jobs:
        return
    with paper_common.worker_pool(num_workers) as pool:
        futures = [pool.submit(_job, *job) for job in jobs]
        for future in concurrent.futures.as_completed(futures):
            yield future.result()


def _job(task_type, method, index, evals, population, num_train):
    return figure4_lib.run_experiment(task_type, method, index, evals=evals,
                                      population_size=population, num_train=num_train)


def markdown_table(results_dir: str) -> str:
    """Every measured task type's counts, rates, ratio and intervals as a Markdown table."""
    with open(os.path.join(results_dir, RESULTS_NAME)) as handle:
        data = json.load(handle)
    rows = ["| task type | RS acceptable / evals | RS rate [95 %] | difficulty | evolution "
            "successes / expts (evals) | evolution rate [95 %] | ratio [95 %] | worker s |",
            "|---|---|---|---|---|---|---|---|"]
    for name, entry in sorted(data["task_types"].items(),
                              key=lambda item: list(figure4_lib.TASK_TYPES).index(item[0])):
        s = summarize(name, entry)
        if not s["rs_evaluations"]:
            continue
        paper = "" if figure4_lib.TASK_TYPES[name].paper else " (not S5)"
        difficulty = (_fmt(s["difficulty"]) if s["difficulty"]
                      else f"> {_fmt(1 / s['rs_rate_ci_high'])}")
        rows.append(
            f"| {name}{paper} | {s['rs_acceptable']} / {s['rs_evaluations']:,} | "
            f"{_fmt(s['rs_rate'])} [{_fmt(s['rs_rate_ci_low'])}, {_fmt(s['rs_rate_ci_high'])}] | "
            f"{difficulty} | {s['evolution_successes']} / {s['evolution_experiments']} "
            f"({s['evolution_evaluations']:,}) | {_fmt(s['evolution_rate'])} "
            f"[{_fmt(s['evolution_rate_ci_low'])}, {_fmt(s['evolution_rate_ci_high'])}] | "
            f"{_fmt(s['ratio'])} [{_fmt(s['ratio_ci_low'])}, {_fmt(s['ratio_ci_high'])}] | "
            f"{s['cpu_secs']:.0f} |")
    return "\n".join(rows)


PAPER = ("Paper (§4.1): RS finds 1 acceptable linear regressor in ~1e7; evolution is ~5x "
         "more efficient there, and the advantage grows with difficulty.")


def plot(results_dir: str, path: str) -> None:
    """Figure 4 as the paper draws it: difficulty (1 / RS rate, log x) against the ratio.

    A task type with no RS success has only a lower bound on its difficulty and on the
    ratio (drawn with arrows); with no evolution success either, its ratio is unknown and
    it is only named below the plot. Reduced-difficulty variants (not S5) are squares.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(os.path.join(results_dir, RESULTS_NAME)) as handle:
        data = json.load(handle)
    fig, ax = plt.subplots(figsize=(8, 5))
    unknown = []
    for name, entry in sorted(data["task_types"].items()):
        s = summarize(name, entry)
        if not s["rs_evaluations"] or not s["evolution_experiments"]:
            continue
        marker = "o" if figure4_lib.TASK_TYPES[name].paper else "s"
        label = f"{name} ({s['rs_evaluations']:.2g} + {s['evolution_evaluations']:.2g} evals)"
        if s["difficulty"]:
            x = s["difficulty"]
            xerr = [[x - 1 / s["rs_rate_ci_high"]], [1 / s["rs_rate_ci_low"] - x]]
        else:
            x, xerr = 1 / s["rs_rate_ci_high"], None
        if s["ratio"] is not None:
            y, yerr = s["ratio"], [[s["ratio"] - s["ratio_ci_low"]],
                                   [s["ratio_ci_high"] - s["ratio"]]]
            ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt=marker, capsize=4, label=label)
            continue
        if s["ratio_ci_low"] <= 0:  # no success by either method: no ratio to draw
            unknown.append(f"{name} (difficulty > {_fmt(x)})")
            continue
        y = s["ratio_ci_low"]
        ax.plot([x], [y], marker, ms=8, label=label + ": lower bounds")
        ax.annotate("", xy=(x * 4, y), xytext=(x, y), arrowprops={"arrowstyle": "->"})
        ax.annotate("", xy=(x, y * 4), xytext=(x, y), arrowprops={"arrowstyle": "->"})
    ax.plot([1e7], [5.0], "*", ms=12, color="k", label="paper: linear regression (~1e7, ~5x)")
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(left=1e2, right=1e9)
    ax.set_xlabel("task difficulty (1 / RS success rate)")
    ax.set_ylabel("success rate ratio (evolution / RS)")
    ax.set_title("Figure 4 on a CPU (95 % intervals; arrows: bounds)")
    ax.legend(fontsize=7, loc="upper left")
    notes = [PAPER] + (["Not drawn, no success by either method: " + "; ".join(unknown)]
                       if unknown else [])
    fig.text(0.01, 0.01, "\n".join(notes), fontsize=7)
    fig.tight_layout(rect=(0, 0.03 + 0.02 * len(notes), 1, 1))
    fig.savefig(path, dpi=120)


def main(argv):
    del argv
    try:
        run(FLAGS.task_type, FLAGS.budget, FLAGS.results_dir, FLAGS.num_workers,
            FLAGS.evals_per_experiment, FLAGS.population_size, FLAGS.num_train_examples)
        if FLAGS.plot:
            plot(FLAGS.results_dir, FLAGS.plot)
            print(f"wrote {FLAGS.plot}")
        if FLAGS.table:
            print(markdown_table(FLAGS.results_dir))
    except ValueError as error:
        sys.exit(f"figure4: {error}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
