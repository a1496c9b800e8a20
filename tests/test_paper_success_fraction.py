"""Smoke tests of experiments/paper/success_fraction.py (tiny budgets, in-process)."""

import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments", "paper"))

import success_fraction as sf  # noqa: E402

SPEC = open(os.path.join(ROOT, "azero_jax", "specs", "linear_search.textproto")).read()
SETUP = sf.Setup(SPEC, None, (4, 3, 1), 200, 20, 100)


def test_configs_parse_and_change_the_spec():
    assert sf.config_name("hurdles=on, fec=off") == "fec=off,hurdles=on"
    assert sf.config_name("base") == "base"
    with pytest.raises(ValueError, match="fec|hurdles|migration"):
        sf.parse_config("fec=maybe")
    spec = sf.configured_spec(SETUP, sf.parse_config("fec=off,hurdles=on"))
    assert spec.fec is None and spec.hurdles is not None and spec.population_size == 20
    assert sf.configured_spec(SETUP, {}).fec is not None  # the spec's own FEC


def test_fractions_accumulate_and_compare(tmp_path):
    results = str(tmp_path / "sf.json")
    # A threshold every final candidate passes, and one none does: exact counts.
    lines = []
    out = sf.run(SETUP, ["fec=on", "migration=on"], 2, 0.0, results, num_workers=0,
                 log=lines.append)
    assert out["fec=on"]["successes"] == 2 and out["migration=on"]["experiments"] == 2
    assert out["comparison"]["difference"] == 0.0
    assert out["comparison"]["ci_low"] < 0 < out["comparison"]["ci_high"]
    # Resumed: only the missing seeds run, and the counts add up.
    more = sf.run(SETUP, ["fec=on", "migration=on"], 3, 0.0, results, num_workers=0,
                  log=lines.append)
    assert more["fec=on"]["experiments"] == 3
    data = json.load(open(results))
    (group,) = data["runs"].values()
    assert sorted(r["seed"] for r in group["configs"]["fec=on"]) == [1000, 1001, 1002]
    # Islands stop at their sweep boundaries, so a migrating run may overshoot by a sweep.
    assert all(200 <= r["individuals"] <= 220 for r in group["configs"]["migration=on"])
    assert all(r["individuals"] == 200 for r in group["configs"]["fec=on"])
    table = sf.markdown_table(results)
    assert "| scalar_linear_regression_task, P=20, 200 individuals | 0.0 | fec=on | 3 / 3 |" in table
    none = sf.summarize(group["configs"]["fec=on"], 2.0)
    assert none["successes"] == 0 and none["ci_high"] < 1.0


def test_a_train_step_budget_lets_fec_buy_individuals():
    setup = sf.Setup(SPEC, None, (4, 3, 1), 0, 20, 100, max_train_steps=300_000)
    on, off = sf.run_one(setup, "fec=on", 5), sf.run_one(setup, "fec=off", 5)
    assert on["individuals"] > 2 * off["individuals"]  # FEC answers repeats for free
    assert 300_000 <= off["train_steps"] < 300_000 + 20 * 10 * 100 + 10_000
