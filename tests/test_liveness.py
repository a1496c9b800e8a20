"""Tests of dead-code elimination (:mod:`azero_jax.backends.cpu.liveness`) and its use by the cpu
backend.

Unit tests of each liveness rule on hand-written programs (a write kills, a partial write
does not, state carried through Learn and across steps, the harness's own writes, random
ops kept, Setup-only state, the two Predict contexts, vector labels), a cross-check with
the per-algorithm analysis of :mod:`azero_jax.analysis.simplify`, and differential tests:
hundreds of random programs over all 65 ops give bit-identical results on the cpu backend
with and without elimination (memory sizes, F in {1, 4, 16}, ACCURACY / RMS / vector
labels, budgets, epochs, validation limits, recorded FEC errors, both decoders).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import azero_jax as az
from azero_jax.analysis import simplify
from azero_jax.backends.cpu import cpu_evaluator, liveness
from azero_jax.core.population import Programs
from azero_jax.core.program import instruction as I
from azero_jax.core.tasks import ACCURACY, Task
from conftest import ProgramGenerator

MEMORY = az.MemoryConfig(6, 4, 2)


def masks(text: str, memory=MEMORY, label_sizes=(0,)):
    """Per part (setup, train predict, learn, valid predict): the kept instructions' flags."""
    programs = Programs.from_algorithms([az.parse_algorithm(text)])
    keep = liveness.keep_mask(programs, memory, label_sizes)[0]
    n = programs.size[0]
    parts = [keep[0, :n[0]] & liveness.KEEP, keep[1, :n[1]] & liveness.KEEP,
             keep[2, :n[2]] & liveness.KEEP, keep[1, :n[1]] & liveness.KEEP_VALID]
    return [[int(bool(flag)) for flag in part] for part in parts]


def program(setup=(), predict=(), learn=()) -> str:
    return ("def Setup():\n" + "".join(f"  {x}\n" for x in setup) + "def Predict():\n"
            + "".join(f"  {x}\n" for x in predict) + "def Learn():\n"
            + "".join(f"  {x}\n" for x in learn))


# ----------------------------------------------------------------------------------
# The rules, one at a time.


def test_a_write_kills_the_earlier_write_of_its_cell():
    setup, predict, learn, valid = masks(program(
        setup=["s2 = 1.5", "s2 = 2.5", "s3 = 4.0"],
        predict=["s1 = s2 * s3", "s4 = s1 + s1"]))
    assert setup == [0, 1, 1]  # s2 = 1.5 is overwritten before anything reads it
    assert predict == [1, 0] and valid == [1, 0]  # s4 is never read
    assert learn == []


def test_an_instruction_reads_its_inputs_before_it_kills_its_output():
    setup, predict, _, _ = masks(program(setup=["s2 = 3.0"], predict=["s2 = s2 + s2",
                                                                      "s1 = abs(s2)"]))
    assert setup == [1] and predict == [1, 1]


def test_a_partial_write_does_not_kill_its_cell():
    # v1[entry] = c keeps the other entries of the earlier v1 = bcast(s2).
    setup, predict, _, _ = masks(program(
        setup=["s2 = 0.25", "v1 = bcast(s2)", "v1[0.5] = 3.0", "m0[0.5, 0.25] = 2.0"],
        predict=["s1 = mean(v1)"]))
    assert setup == [1, 1, 1, 0]  # the matrix entry is dead: m0 is never read
    setup, _, _, _ = masks(program(setup=["m0 = outer(v1, v1)", "m0[0.5, 0.25] = 2.0"],
                                   predict=["s1 = mean(m0)"]))
    assert setup == [1, 1]
    # ... and a partial write into a dead cell is dead.
    setup, _, _, _ = masks(program(setup=["v2[0.5] = 3.0"], predict=["s1 = mean(v1)"]))
    assert setup == [0]


def test_state_carried_through_learn_into_the_next_predict_is_live():
    _, predict, learn, valid = masks(program(
        predict=["s1 = dot(v1, v0)"],
        learn=["s3 = s0 - s1", "v2 = s3 * v0", "v1 = v1 + v2", "s5 = s5 + s0"]))
    assert predict == [1] and valid == [1]
    # The weight update reaches the next prediction; the counter s5 feeds only itself
    # (strong liveness removes such self-sustaining dead loops).
    assert learn == [1, 1, 1, 0]


def test_the_label_carried_from_learn_into_the_next_predict_is_live():
    # s0 is the label during Learn and 0 during Predict: Learn's copy reaches the next step.
    _, predict, learn, valid = masks(program(predict=["s1 = s3 + s2", "s2 = abs(s0)"],
                                             learn=["s3 = abs(s0)", "s4 = abs(s0)"]))
    assert learn == [1, 0]
    # Predict's own copy of s0 (0 then) reaches the next Predict too: s2 is not the
    # harness's, so nothing kills it.
    assert predict == [1, 1] and valid == [1, 1]


def test_predict_state_read_by_the_next_predict_is_live_in_both_contexts():
    # s2 written by Predict is read by the next Predict (training or validation).
    _, predict, _, valid = masks(program(predict=["s1 = s2 + s1", "s2 = s1 * s1"]))
    assert predict == [1, 1] and valid == [1, 1]


def test_what_only_learn_reads_is_dead_in_validation_predict():
    _, predict, learn, valid = masks(program(
        predict=["s1 = dot(v1, v0)", "s4 = s1 * s1"],
        learn=["s3 = s4 - s0", "v2 = s3 * v0", "v1 = v1 + v2"]))
    assert predict == [1, 1] and learn == [1, 1, 1]
    assert valid == [1, 0]  # Learn overwrites nothing of it, but Learn never follows validation


def test_what_only_validation_predict_reads_is_live_after_setup():
    # Validation Predict writes s2 = |s3| for the next validation example; in training
    # Learn overwrites s2 first. So s3 is live only through validation, and Setup's s3
    # matters: validation examples 2.. predict 7^2.
    text = program(setup=["s3 = 7.0"], predict=["s1 = s2 * s2", "s2 = abs(s3)"],
                   learn=["s2 = abs(s0)"])
    setup, predict, learn, valid = masks(text)
    assert setup == [1] and learn == [1]
    assert predict == [1, 0] and valid == [1, 1]
    task = az.tasks.unit_test_ones_task(4, 3, 4)
    results = [cpu_evaluator.evaluate_pairs(
        [az.parse_algorithm(text)], [task], [0], [0], memory=MEMORY, max_abs_error=1e9,
        seed=0, algorithm_ids=[0], train_steps=None, valid_steps=None, record_errors=(0, 4),
        num_threads=1, dead_code_elimination=dce) for dce in (False, True)]
    _identical(results[1].valid_errors, results[0].valid_errors, "valid_errors")
    np.testing.assert_array_equal(results[0].valid_errors[0], [0.0, 48.0, 48.0, 48.0])


def test_the_harness_kills_v0_and_the_label_before_predict_and_learn():
    # Hand-written writes to s0 / v0 (the randomizer never makes them) never reach a read.
    setup, predict, learn, valid = masks(program(
        setup=["s0 = 2.0", "v0 = bcast(s0)"],
        predict=["s1 = mean(v0)", "s0 = 5.0"],
        learn=["s0 = 3.0", "v0 = s0 * v0"]))
    assert setup == [0, 0] and learn == [0, 0]
    assert predict == [1, 0] and valid == [1, 0]


def test_random_ops_are_kept_even_when_dead_and_keep_nothing_else():
    setup, predict, learn, valid = masks(program(
        setup=["s3 = gaussian(0.0, 1.0)", "v2 = uniform(-1.0, 1.0, n_features)", "s4 = 1.0"],
        predict=["s1 = s4 + s0", "m1 = gaussian(0.0, 1.0, (n_features, n_features))"],
        learn=["s5 = uniform(0.0, 1.0)"]))
    assert setup == [1, 1, 1] and predict == [1, 1] and valid == [1, 1] and learn == [1]
    # A random op's write kills its cell like any other write.
    setup, _, _, _ = masks(program(setup=["s4 = 1.0", "s4 = gaussian(0.0, 1.0)"],
                                   predict=["s1 = s4 + s0"]))
    assert setup == [0, 1]


def test_setup_only_state():
    setup, _, _, _ = masks(program(setup=["s2 = 0.5", "s3 = 7.0", "m1 = bcast(v0, axis=0)"],
                                   predict=["s1 = s2 * s2"]))
    assert setup == [1, 0, 0]


def test_an_accuracy_or_rms_prediction_is_the_same_root():
    # s1 is read after each Predict whatever the eval type; an s1 written only in Learn
    # and never overwritten by Predict is still the prediction.
    setup, predict, learn, _ = masks(program(setup=["s1 = 0.5"], predict=["s2 = s1 + s0"],
                                             learn=["s1 = s1 * s1"]))
    assert setup == [1] and learn == [1] and predict == [0]


def test_vector_labels_read_v2_and_kill_v1_not_s0():
    text = program(setup=["s0 = 1.0", "v1 = bcast(s0)"],
                   predict=["v2 = s0 * v0", "s1 = mean(v1)"],
                   learn=["v3 = v1 - v2", "v2 = v3 + v0"])
    setup, predict, learn, _ = masks(text, label_sizes=(3,))
    # s0 is not the label here: Setup's s0 reaches Predict; v1 is (zeroed before Predict).
    assert setup == [1, 0] and predict == [1, 0]
    assert learn == [0, 0]  # v2 is overwritten by the next Predict
    # Tasks of both kinds: only v0 is killed and both predictions are read.
    setup, predict, _, _ = masks(text, label_sizes=(0, 3))
    assert setup == [1, 1] and predict == [1, 1]


def test_a_program_with_an_address_outside_memory_keeps_everything():
    setup, predict, learn, valid = masks(program(setup=["s9 = 1.0", "s3 = 2.0"],
                                                 predict=["s4 = s3 + s3"],
                                                 learn=["s2 = s3 + s3"]))
    assert setup == [1, 1] and predict == [1] and learn == [1] and valid == [1]


# ----------------------------------------------------------------------------------
# The same masks from the two entry points, and the cross-check with analysis.simplify.


def _random_algorithms(seed: int, count: int, memory=(5, 4, 2), sizes=((0, 6), (1, 6), (0, 8)),
                       to_reserved: float = 0.0):
    """Random algorithms over all 65 ops; ``to_reserved``: the fraction of writes moved to
    s0 / v0 (hand-written programs may write them; the randomizer never does)."""
    rng = np.random.default_rng(seed)
    gen = ProgramGenerator(rng)
    algorithms = [gen.algorithm(memory, sizes=sizes, ops=(tuple(range(65)),) * 3)
                  for _ in range(count)]
    if to_reserved:
        out = []
        for algorithm in algorithms:
            parts = []
            for component in algorithm.components:
                component = np.array(component)
                types = liveness.OPERAND_TYPES[component["op"], 2]
                moved = (rng.random(len(component)) < to_reserved) & ((types == 1) | (types == 2))
                component["out"][moved] = 0
                parts.append(component)
            out.append(az.Algorithm(*parts))
        algorithms = out
    return algorithms


def test_flat_and_tensor_masks_agree_and_drop_much_of_random_programs():
    memory = az.MemoryConfig(5, 4, 2)
    algorithms = _random_algorithms(1, 300, to_reserved=0.1)
    programs = Programs.from_algorithms(algorithms)
    keep = liveness.keep_mask(programs, memory)
    flat, bounds = cpu_evaluator._flatten_programs(algorithms)
    keep_flat = liveness.keep_mask_flat(flat, bounds, memory)
    np.testing.assert_array_equal(keep[programs.valid_mask()], keep_flat)
    real = flat["op"] != 0
    assert not np.any(keep_flat[~real])  # NO_OPs are never kept
    assert 0.1 < (keep_flat[real] > 0).mean() < 0.5  # random programs: most is dead


def test_agrees_with_the_per_algorithm_analysis_of_analysis_simplify():
    memory = az.MemoryConfig(5, 4, 2)
    algorithms = _random_algorithms(2, 600)
    keep = liveness.keep_mask(Programs.from_algorithms(algorithms), memory)
    compared = 0
    for a, algorithm in enumerate(algorithms):
        if simplify.setup_noops(algorithm.setup).any():
            continue  # simplify drops provable no-ops of Setup first; liveness does not
        compared += 1
        need_setup, need_predict, need_learn = simplify.analyze(algorithm).needed
        n = [len(c) for c in algorithm.components]
        np.testing.assert_array_equal(keep[a, 0, :n[0]] & liveness.KEEP > 0, need_setup)
        np.testing.assert_array_equal(keep[a, 2, :n[2]] & liveness.KEEP > 0, need_learn)
        # simplify has one Predict (either context): the union of the two masks.
        np.testing.assert_array_equal(keep[a, 1, :n[1]] > 0, need_predict)
    assert compared > 100


# ----------------------------------------------------------------------------------
# The cpu backend: identical results with and without elimination.


def _classification(task: Task, index: int, epochs: int) -> Task:
    """A 0/1 ACCURACY task on the features of ``task``."""
    w = np.linspace(-1.0, 1.0, task.features_size)
    return Task(task.x_train, (task.x_train @ w > 0).astype(float), task.x_valid,
                (task.x_valid @ w > 0).astype(float), ACCURACY, epochs, index=index,
                data_seed=index)


def _one_hot(task: Task, index: int, K: int) -> Task:
    """A K-class ACCURACY task (vector labels) on the features of ``task``."""
    def labels(x):
        return np.eye(K)[np.argmax(x[:, :K], axis=1)]
    return Task(task.x_train, labels(task.x_train), task.x_valid, labels(task.x_valid),
                ACCURACY, 2, index=index, data_seed=index)


def _tasks(F: int, vector_labels: bool) -> list[Task]:
    base = [az.tasks.scalar_linear_regression_task(F, 12, 6, data_seed=F + i, param_seed=i,
                                                   num_epochs=1 + i % 3, index=i)
            for i in range(3)]
    tasks = base + [_classification(base[i], 3 + i, 1 + i) for i in range(2)]
    if vector_labels:
        tasks.append(_one_hot(base[0], 5, min(F, 3)))
    return tasks


def _identical(a, b, what: str) -> None:
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, what
    if a.dtype.kind == "f":  # bit for bit: NaN payloads and signed zeros too
        a, b = a.view(np.uint64), b.view(np.uint64)
    np.testing.assert_array_equal(a, b, err_msg=what)


@pytest.mark.parametrize("F, memory, vector_labels, seed", [
    (1, (4, 3, 1), False, 11),
    (4, (5, 4, 2), True, 12),
    (4, (3, 3, 1), False, 13),
    (16, (6, 5, 2), True, 14),
    (16, (8, 3, 3), False, 15),
])
def test_results_are_bit_identical_with_and_without_elimination(F, memory, vector_labels,
                                                                seed):
    mem = az.MemoryConfig(*memory)
    algorithms = _random_algorithms(seed, 250 if F < 16 else 120, memory, to_reserved=0.05)
    tasks = _tasks(F, vector_labels)
    rng = np.random.default_rng(seed)
    off, train_steps = _compare_with_and_without(algorithms, tasks, mem, seed, rng)
    # Not vacuous: the programs run, some score, some abort.
    assert 0.1 < (off.fitness > 0).mean() < 1.0
    assert (off.train_steps < train_steps).any()
    if vector_labels:  # tasks of one kind: the multi-class cells alone (not the union)
        _compare_with_and_without(algorithms, tasks[-1:], mem, seed, rng)


def _compare_with_and_without(algorithms, tasks, memory, seed, rng):
    """Evaluates every pair with and without elimination (both decoders) under several
    budgets and options; asserts bit-identical results. Returns the last results without
    elimination and their budgets."""
    A, T = len(algorithms), len(tasks)
    a_idx, t_idx = np.meshgrid(np.arange(A), np.arange(T), indexing="ij")
    a_idx, t_idx = a_idx.ravel(), t_idx.ravel()
    total = np.array([tasks[t].total_train_steps for t in t_idx])
    # Budgets: mostly the full run, else anything from none to all epochs.
    train_steps = np.where(rng.random(len(total)) < 0.6, total,
                           rng.integers(0, total + 1))
    for valid_steps, record_errors, max_abs_error in ((None, None, 100.0), (3, (8, 4), 1e30),
                                                      (None, (20, 6), 2.0)):
        kwargs = dict(memory=memory, max_abs_error=max_abs_error, seed=seed,
                      algorithm_ids=np.arange(A) + 100, train_steps=train_steps,
                      valid_steps=valid_steps, record_errors=record_errors, num_threads=1)
        off = cpu_evaluator.evaluate_pairs(algorithms, tasks, a_idx, t_idx,
                                           dead_code_elimination=False, **kwargs)
        on_list = cpu_evaluator.evaluate_pairs(algorithms, tasks, a_idx, t_idx,
                                               dead_code_elimination=True, **kwargs)
        on_tensors = cpu_evaluator.evaluate_pairs(Programs.from_algorithms(algorithms), tasks,
                                                  a_idx, t_idx, dead_code_elimination=True,
                                                  **kwargs)
        for on in (on_list, on_tensors):
            for field in ("fitness", "train_steps", "train_errors", "valid_errors",
                          "num_train_errors", "num_valid_errors"):
                if getattr(off, field) is not None:
                    _identical(getattr(on, field), getattr(off, field), field)
    return off, train_steps


def test_random_programs_draw_the_same_numbers_with_and_without_elimination():
    memory = az.MemoryConfig(5, 4, 2)
    rng = np.random.default_rng(5)
    gen = ProgramGenerator(rng)
    random_heavy = (tuple(range(1, 65)) + tuple(range(59, 65)) * 6,) * 3
    algorithms = [gen.algorithm((5, 4, 2), ops=random_heavy) for _ in range(150)]
    tasks = _tasks(4, False)
    A, T = len(algorithms), len(tasks)
    a_idx, t_idx = (x.ravel() for x in np.meshgrid(np.arange(A), np.arange(T), indexing="ij"))
    keep = liveness.keep_mask(Programs.from_algorithms(algorithms), memory)
    assert (keep[Programs.from_algorithms(algorithms).valid_mask()] == 0).any()
    results = [cpu_evaluator.evaluate_pairs(
        algorithms, tasks, a_idx, t_idx, memory=memory, max_abs_error=100.0, seed=3,
        algorithm_ids=np.arange(A), train_steps=None, valid_steps=None,
        record_errors=(10, 5), num_threads=1, dead_code_elimination=dce) for dce in (False, True)]
    for field in ("fitness", "train_steps", "train_errors", "valid_errors"):
        _identical(getattr(results[1], field), getattr(results[0], field), field)
    assert len(np.unique(results[0].fitness)) > 20


def test_the_w1_programs_lose_most_of_their_instructions():
    """The benchmark's random programs (the reference randomizer's) are mostly dead code."""
    import os
    path = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "bench",
                        "w1_demo.jsonl")
    if not os.path.exists(path):
        pytest.skip("shared/bench is not there (it is outside the repository)")
    import json
    with open(path) as f:
        algorithms = [az.parse_algorithm(json.loads(line)["text"]) for line in f if line.strip()]
    programs = Programs.from_algorithms(algorithms)
    keep = liveness.keep_mask(programs, az.MemoryConfig(4, 3, 1))[programs.valid_mask()]
    assert (keep & liveness.KEEP > 0).mean() < 0.4


# ----------------------------------------------------------------------------------
# The switch, and what elimination must not change.


def test_the_environment_switch(monkeypatch):
    monkeypatch.delenv("AZERO_JAX_CPU_DCE", raising=False)
    assert cpu_evaluator.dead_code_elimination_default()
    for off in ("0", "false", "OFF", "no"):
        monkeypatch.setenv("AZERO_JAX_CPU_DCE", off)
        assert not cpu_evaluator.dead_code_elimination_default()
    monkeypatch.setenv("AZERO_JAX_CPU_DCE", "1")
    assert cpu_evaluator.dead_code_elimination_default()


def test_the_decoders_drop_the_dead_instructions_alike():
    memory = az.MemoryConfig(5, 4, 3)
    algorithms = _random_algorithms(7, 80, (5, 4, 3))
    programs = Programs.from_algorithms(algorithms)
    flat, bounds = cpu_evaluator._flatten_programs(algorithms)
    keep_flat = liveness.keep_mask_flat(flat, bounds, memory)
    keep = liveness.keep_mask(programs, memory)
    for F in (1, 4, 16):
        full = cpu_evaluator._decode(flat, memory, F, algorithms, bounds)
        expected = cpu_evaluator._decode(flat, memory, F, algorithms, bounds, keep_flat)
        for got in (cpu_evaluator._decode_compiled(programs, memory, F, keep),
                    cpu_evaluator._decode_compiled((flat, bounds), memory, F, keep_flat)):
            for a, b in zip(expected, got):
                assert a.dtype == b.dtype and np.array_equal(a, b)
        for a, b in zip(full, cpu_evaluator._decode_compiled((flat, bounds), memory, F)):
            assert a.dtype == b.dtype and np.array_equal(a, b)
        # Each program: its kept instructions (Predict per context) and the 6 pseudo-ops.
        kept = ((keep & liveness.KEEP) > 0).sum(axis=(1, 2)) + (
            (keep[:, 1] & liveness.KEEP_VALID) > 0).sum(axis=1) + 6
        np.testing.assert_array_equal(np.diff(np.r_[expected[2], len(expected[0]) // 4]), kept)
        assert len(expected[0]) < 0.8 * len(full[0])


@pytest.mark.parametrize("tensors", [False, True])
def test_a_dead_instruction_that_cannot_be_decoded_is_still_reported(tensors):
    # v2[f0 = 1.5] is outside the vector whether or not anything reads v2.
    algorithm = az.Algorithm([I("VECTOR_CONST_SET_OP", out=2, f0=1.5, f1=2.0)],
                             [I("SCALAR_SUM_OP", 0, 0, 1)], [])
    algorithms = Programs.from_algorithms([algorithm]) if tensors else [algorithm]
    task = az.tasks.unit_test_ones_task(4, 5, 3)
    with pytest.raises(ValueError, match="outside"):
        cpu_evaluator.evaluate_pairs(algorithms, [task], [0], [0], memory=MEMORY,
                                     max_abs_error=100.0, seed=0, algorithm_ids=[0],
                                     train_steps=None, valid_steps=None, record_errors=None,
                                     num_threads=1, dead_code_elimination=True)


def test_run_debug_runs_every_instruction():
    # s3 is dead, but run_debug reports the final memory: the reference's.
    out = cpu_evaluator.run_debug(az.parse_algorithm(program(setup=["s3 = 4.0"],
                                                             predict=["s1 = s0 + s0"])),
                                  az.tasks.unit_test_ones_task(4, 5, 3), MEMORY)
    assert out["scalars"][3] == 4.0
