"""Tests of exact checkpoints: save, restore, continue == uninterrupted (CPU backend)."""

import json
import os

import numpy as np

from azero_jax.core.population import Programs
from azero_jax.core.program import format_algorithm
from azero_jax.evolution import checkpoint
from azero_jax.evolution.fec import FECConfig
from azero_jax.evolution.regularized_evolution import Search
from search_helpers import MEMORY, small_spec


def _spec():
    return small_spec(fec=FECConfig(10, 10, cache_size=50, forget_every=5), population_size=10)


def _fingerprint(search):
    return (search.fitness.tolist(), search.birth.tolist(), search.train_steps,
            search.num_individuals, [format_algorithm(a) for a in search.population],
            search.fec.keys(), search.fec.hits, search.fec.misses)


def test_resume_equals_uninterrupted(tmp_path):
    straight = Search(_spec(), memory=MEMORY, seed=21, backend="cpu", child_batch_size=4)
    for _ in range(12):
        straight.step()

    first = Search(_spec(), memory=MEMORY, seed=21, backend="cpu", child_batch_size=4)
    for _ in range(5):
        first.step()
    path = os.path.join(tmp_path, "ckpt.npz")
    state, arrays = first.state_dict()
    checkpoint.save(path, {"search": state}, arrays)
    loaded_state, loaded_arrays = checkpoint.load(path)
    second = Search(_spec(), memory=MEMORY, seed=21, backend="cpu", child_batch_size=4)
    second.load_state_dict(loaded_state["search"], loaded_arrays)
    assert _fingerprint(second) == _fingerprint(first)
    for _ in range(7):
        second.step()
    assert _fingerprint(second) == _fingerprint(straight)


def test_checkpoint_is_plain_npz_without_pickle(tmp_path):
    search = Search(_spec(), memory=MEMORY, seed=22, backend="cpu", child_batch_size=10)
    search.step()
    path = os.path.join(tmp_path, "c.npz")
    state, arrays = search.state_dict()
    checkpoint.save(path, {"search": state}, arrays)
    with np.load(path, allow_pickle=False) as data:
        assert all(data[name].dtype != object for name in data.files)
    assert os.path.exists(os.path.join(tmp_path, "c.json"))
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".ckpt-")]


def test_pack_unpack_algorithms_round_trip():
    search = Search(_spec(), memory=MEMORY, seed=23, backend="cpu", child_batch_size=10)
    batches = [search.mutator.random_programs(np.array([i]), 23, (i % 3, 2, i)) for i in range(6)]
    algorithms = [batch.algorithm(0) for batch in batches]
    restored = checkpoint.unpack_algorithms(checkpoint.pack_algorithms(algorithms, "p"), "p")
    assert restored == algorithms
    # The tensors' own path writes the same arrays and reads back the same tensors.
    programs = Programs.concatenate(batches)
    packed = checkpoint.pack_algorithms(programs, "p")
    assert all(np.array_equal(packed[k], v)
               for k, v in checkpoint.pack_algorithms(algorithms, "p").items())
    assert checkpoint.unpack_programs(packed, "p").algorithms() == algorithms


def test_resume_with_hurdles_equals_uninterrupted(tmp_path):
    from azero_jax.evolution.hurdles import HurdlesConfig
    spec = small_spec(fec=FECConfig(10, 10), population_size=10, hurdles=HurdlesConfig(75.0, 10, 1))
    straight = Search(spec, memory=MEMORY, seed=24, backend="cpu", child_batch_size=5)
    for _ in range(10):
        straight.step()
    first = Search(spec, memory=MEMORY, seed=24, backend="cpu", child_batch_size=5)
    for _ in range(6):
        first.step()
    state, arrays = first.state_dict()
    path = os.path.join(tmp_path, "h.npz")
    checkpoint.save(path, {"search": state}, arrays)
    loaded_state, loaded_arrays = checkpoint.load(path)
    second = Search(spec, memory=MEMORY, seed=24, backend="cpu", child_batch_size=5)
    second.load_state_dict(loaded_state["search"], loaded_arrays)
    for _ in range(4):
        second.step()
    assert _fingerprint(second) == _fingerprint(straight)
    assert second.hurdle_stats == straight.hurdle_stats and straight.hurdle_stats.evaluated > 0


def test_finished_run_is_not_extended_on_restart(tmp_path):
    from azero_jax.evolution import experiment
    from search_helpers import task_spec
    config = experiment.ExperimentConfig(
        search=small_spec(population_size=8, max_train_steps=3000), select_tasks=(task_spec(),),
        final_tasks=(task_spec(),), memory=MEMORY, random_seed=31, max_experiments=2,
        backend="cpu", checkpoint_dir=str(tmp_path))
    lines = []
    first = experiment.run_experiments(config, log=lines.append)
    again = experiment.run_experiments(config, log=lines.append)
    assert first["num_experiments"] == again["num_experiments"] == 2
    assert again["final_fitness"] == first["final_fitness"]
    assert again["best_algorithm"] == first["best_algorithm"]
    assert any("all 2 experiments were done" in line for line in lines)


def test_resume_with_another_spec_is_refused(tmp_path):
    import pytest
    from azero_jax.evolution import experiment
    from search_helpers import task_spec
    config = experiment.ExperimentConfig(
        search=small_spec(population_size=8, max_train_steps=2000), select_tasks=(task_spec(),),
        final_tasks=(), memory=MEMORY, random_seed=32, backend="cpu", checkpoint_dir=str(tmp_path))
    experiment.run_experiments(config, log=lambda line: None)
    other = experiment.ExperimentConfig(**{**config.__dict__,
                                           "search": small_spec(population_size=8,
                                                                max_train_steps=2000,
                                                                mutate_prob=0.5)})
    # The message names the one setting that differs (and it is still a ValueError).
    with pytest.raises(ValueError, match=r"search_experiment_spec\.mutate_prob differs;"):
        experiment.run_experiments(other, log=lambda line: None)


def test_trim_metrics_log_drops_what_a_resumed_run_logs_again(tmp_path):
    from azero_jax.evolution.experiment import trim_metrics_log
    path = tmp_path / "metrics.jsonl"
    records = [(0, 100), (0, 200), (1, 100), (1, 200), (1, 300), (2, 100)]
    path.write_text("".join(json.dumps({"experiment": e, "individuals": n}) + "\n"
                            for e, n in records) + "not json\n")
    assert trim_metrics_log(str(path), 1, 200) == 2
    kept = path.read_text().splitlines()
    assert [json.loads(l)["individuals"] for l in kept[:-1]] == [100, 200, 100, 200]
    assert kept[-1] == "not json"
    assert trim_metrics_log(None, 0, 0) == 0 and trim_metrics_log(str(tmp_path / "no"), 0, 0) == 0
