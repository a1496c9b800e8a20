"""Islands with migration in one process (batched mode): config, migration, batching."""

import json
import os

import numpy as np
import pytest

from search_helpers import MEMORY, FakeEvaluator, small_spec, task_spec

from azero_jax import islands
from azero_jax.evaluator import MemoryConfig
from azero_jax.islands import (IslandGroup, IslandsConfig, MigrationServer, island_specs,
                               parse_islands_config, run_islands)
from azero_jax.spec import parse_search_experiment_spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPECS = os.path.join(ROOT, "experiments", "specs")
NONLINEAR_MEMORY = MemoryConfig(10, 10, 4)


def nonlinear_spec(population_size=50):
    """The reference's nonlinear integration test: repair a damaged neural net (>= 0.99)."""
    with open(os.path.join(SPECS, "nonlinear_search.textproto")) as handle:
        spec = parse_search_experiment_spec(handle.read())
    return spec.replace(population_size=population_size, progress_every=10**6)


def group(config, spec=None, seed=3, evaluate_fn=None, **kw):
    spec = spec or small_spec(population_size=10)
    server = MigrationServer(seed)
    return IslandGroup(spec, island_specs(config, spec, seed), config, memory=MEMORY,
                       backend="cpu", evaluate_fn=evaluate_fn or FakeEvaluator(), server=server,
                       **kw), server


# -- config ---------------------------------------------------------------------------


def test_config_file_spreads_population_and_task_sets(tmp_path):
    tasks = "tasks { scalar_affine_regression_task {} features_size: 4 num_train_examples: 20 " \
            "num_valid_examples: 10 num_tasks: 2 eval_type: RMS_ERROR }"
    (tmp_path / "b.textproto").write_text(tasks)
    data = {"num_islands": 4, "population_size": {"min": 100, "max": 1000},
            "task_sets": {"a": tasks.replace("affine", "linear"), "b": "b.textproto"},
            "task_set_fractions": {"a": 0.5, "b": 0.5}, "migration_interval": 500}
    path = tmp_path / "islands.json"
    path.write_text(json.dumps(data))
    config = islands.load_islands_config(str(path), migration_fraction=0.25)
    assert config.population_sizes == (100, 215, 464, 1000)
    assert config.island_task_sets == ("a", "b", "a", "b")
    assert dict(config.task_sets)["b"][0].task_type == "scalar_affine_regression_task"
    assert config.migration_interval == 500 and config.migration_fraction == 0.25
    # A flag (override) wins over the file; "migration": false is interval 0.
    assert islands.load_islands_config(str(path), num_islands=2).num_islands == 2
    off = parse_islands_config({"migration": False})
    assert off.migration_interval == 0 and not off.migration


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="unknown key 'populaton_size'"):
        parse_islands_config({"populaton_size": 10})
    with pytest.raises(ValueError, match="parallel"):
        IslandsConfig(parallel="threads")
    with pytest.raises(ValueError, match="unknown task set 'x'"):
        IslandsConfig(num_islands=1, island_task_sets=("x",))
    with pytest.raises(ValueError, match="population_sizes has 1 entries for 2 islands"):
        IslandsConfig(num_islands=2, population_sizes=(10,))


def test_assign_task_sets_fractions():
    assert islands.assign_task_sets({"m": 0.5, "c": 0.5}, 5).count("m") in (2, 3)
    names = islands.assign_task_sets({"m": 0.25, "c": 0.75}, 8)
    assert names.count("m") == 2 and names.count("c") == 6


# -- batching ---------------------------------------------------------------------------


def test_all_islands_children_of_a_step_go_in_one_evaluator_call():
    fake = FakeEvaluator()
    config = IslandsConfig(num_islands=4, population_sizes=(10, 10, 20, 20),
                           migration_interval=0)
    g, _ = group(config, evaluate_fn=fake, child_batch_size=5)
    made = g.step()
    assert made == 20  # 4 islands x 5 children
    assert len(fake.calls) == 1  # no FEC: one full evaluation for all islands
    assert fake.calls[0]["pairs"] == 4 * 5 * 2 and fake.calls[0]["algorithms"] == 20
    assert [i.search.num_individuals for i in g.islands] == [5, 5, 5, 5]


def test_fec_probe_and_full_evaluation_are_one_call_each():
    from azero_jax.fec import FECConfig
    fake = FakeEvaluator()
    spec = small_spec(population_size=8, fec=FECConfig(10, 10))
    g, _ = group(IslandsConfig(num_islands=3, migration_interval=0), spec=spec,
                 evaluate_fn=fake, child_batch_size=8)
    g.step()
    assert [c["kind"] for c in fake.calls] == ["probe", "eval"]
    assert fake.calls[0]["algorithms"] == 24


def test_task_sets_are_offset_per_island():
    seen = []
    fake = FakeEvaluator()

    def evaluate(algorithms, tasks, a_idx, t_idx, **kw):
        seen.append((len(tasks), sorted(set(np.asarray(t_idx).tolist()))))
        return fake(algorithms, tasks, a_idx, t_idx, **kw)

    other = (task_spec("scalar_affine_regression_task", num_tasks=3),)
    config = IslandsConfig(num_islands=2, task_sets=(("b", other),), island_task_sets=("", "b"),
                           migration_interval=0)
    g, _ = group(config, evaluate_fn=evaluate, child_batch_size=4)
    g.step()
    assert seen == [(5, [0, 1, 2, 3, 4])]  # 2 + 3 tasks in one call
    assert [len(i.search.tasks) for i in g.islands] == [2, 3]


# -- migration ---------------------------------------------------------------------------


def test_migrants_are_reevaluated_and_enter_as_the_youngest():
    fake = FakeEvaluator()
    config = IslandsConfig(num_islands=2, population_sizes=(10, 12), migration_interval=10,
                           migration_fraction=0.5)
    g, server = group(config, evaluate_fn=fake, child_batch_size=10)
    g.server = None  # step without migrating
    g.step()  # 10 children each: island 0 full (due), island 1 not yet
    g.server = server
    island0 = g.islands[0]
    assert island0.due and not g.islands[1].due
    received = server.exchange(5, [a for a in g.islands[1].search.population[:10]])  # a pool
    calls_before = len(fake.calls)
    n = g.migrate([island0])
    search = island0.search
    assert n == 5 and island0.migrations == 1 and island0.migrants_received == 5
    assert len(fake.calls) == calls_before + 1 and fake.calls[-1]["pairs"] == 5 * 2
    assert search.next_slot == 0 and search.num_individuals == 15
    # The five newest slots hold migrants (birth ids 10..14), fitness re-evaluated here.
    assert search.birth[-5:].tolist() == list(range(10, 15))
    kept = search.birth[:5].tolist()
    assert kept == sorted(kept) and all(b < 10 for b in kept)
    for slot in range(5, 10):
        algorithm = search.population[slot]
        assert search.fitness[slot] == pytest.approx(FakeEvaluator._u(algorithm))
    assert received  # the server answered from the pool of both islands
    # The next child replaces the oldest kept individual, not a migrant.
    search.child_batch_size = 1
    g.drive({0: search.step_requests()})
    assert search.birth[0] == 15 and search.birth[1:5].tolist() == kept[1:]
    assert search.birth[-5:].tolist() == list(range(10, 15))


def test_migration_on_and_off():
    spec = small_spec(population_size=10, max_train_steps=4000)
    on = run_islands(spec, IslandsConfig(num_islands=4, migration_interval=10), memory=MEMORY,
                     seed=2, backend="cpu", evaluate_fn=FakeEvaluator())
    off = run_islands(spec, IslandsConfig(num_islands=4, migration_interval=0), memory=MEMORY,
                      seed=2, backend="cpu", evaluate_fn=FakeEvaluator())
    assert on.migrations > 0 and on.server["exchanges"] == on.migrations
    assert all(i["migrants_received"] == 5 * i["migrations"] for i in on.islands)
    assert off.migrations == 0 and off.server["exchanges"] == 0
    assert on.num_islands == off.num_islands == 4


def test_same_seed_same_run():
    spec = small_spec(population_size=10, max_train_steps=3000)
    config = IslandsConfig(num_islands=3, migration_interval=15)
    a = run_islands(spec, config, memory=MEMORY, seed=9, backend="cpu", evaluate_fn=FakeEvaluator())
    b = run_islands(spec, config, memory=MEMORY, seed=9, backend="cpu", evaluate_fn=FakeEvaluator())
    assert a.to_json()["islands"] == b.to_json()["islands"]
    assert a.fitness == b.fitness and a.individuals == b.individuals


def test_checkpoint_resume_continues_every_island(tmp_path):
    spec = small_spec(population_size=10, max_train_steps=10**9)
    config = IslandsConfig(num_islands=2, migration_interval=10)
    first = run_islands(spec, config, memory=MEMORY, seed=4, backend="cpu",
                        evaluate_fn=FakeEvaluator(), checkpoint_dir=str(tmp_path),
                        max_individuals=40)
    assert sorted(os.listdir(tmp_path)) == ["island_00000.json", "island_00000.npz",
                                            "island_00001.json", "island_00001.npz",
                                            "server.json", "server.npz"]
    g, _ = group(config, spec=spec, seed=4, checkpoint_dir=str(tmp_path))
    assert g.resumed == 2
    assert [i.search.num_individuals for i in g.islands] == \
        [i["individuals"] for i in first.islands]
    assert [i.migrations for i in g.islands] == [i["migrations"] for i in first.islands]
    g.step()
    assert all(i.search.num_individuals > c["individuals"]
               for i, c in zip(g.islands, first.islands))


# -- real evaluation -----------------------------------------------------------------------


def test_batched_islands_find_the_solution():
    """4 islands repair the damaged neural net of the reference's nonlinear test (cpu)."""
    config = IslandsConfig(num_islands=4, migration_interval=100, stop_search_fitness=0.99)
    records = []
    result = run_islands(nonlinear_spec(), config, memory=NONLINEAR_MEMORY, seed=1,
                         backend="cpu", max_individuals=20000, progress_fn=records.append)
    assert result.fitness >= 0.99
    assert result.migrations > 0
    assert records and records[-1]["islands"] == 4 and "migrations" in records[-1]
    assert islands.format_progress(records[-1]).endswith(
        f"islands=4, migrations={records[-1]['migrations']}")


@pytest.mark.slow
def test_demo_spec_islands_find_a_linear_regressor():
    """The run_demo.sh spec: 16 batched islands of P = 100 find it (seed 1000, ~86k
    individuals, ~15 s on 2 cores; batched mode is deterministic for a seed)."""
    with open(os.path.join(SPECS, "demo_search.textproto")) as handle:
        spec = parse_search_experiment_spec(handle.read()).replace(population_size=100,
                                                                    progress_every=10**7)
    config = IslandsConfig(num_islands=16, migration_interval=1000, stop_search_fitness=0.9999)
    result = run_islands(spec, config, memory=MEMORY, seed=1000, backend="cpu",
                         max_individuals=6000)
    assert result.fitness >= 0.9999
    assert result.migrations > 0


def test_server_samples_packed_pools_like_a_list_of_algorithms():
    """The packed server picks what ``random.sample`` over the flat list of every
    island's latest upload picks, with the same RNG (and repeats when asked for more)."""
    import random

    from conftest import ProgramGenerator
    gen = ProgramGenerator(np.random.default_rng(4))
    rng = np.random.default_rng(5)

    def uploads(n):
        return [gen.algorithm((4, 3, 1), sizes=tuple((0, int(rng.integers(1, 6)))
                                                      for _ in range(3))) for _ in range(n)]

    server, oracle_rng, pools = MigrationServer(seed=9), random.Random(9), {}
    for island, n in [(2, 4), (0, 3), (2, 5), (1, 6), (0, 20)]:
        upload = uploads(n)
        got = server.exchange(island, upload)
        pools[island] = upload
        flat = [a for key in sorted(pools) for a in pools[key]]
        want = (oracle_rng.sample(flat, n) if n <= len(flat)
                else [flat[oracle_rng.randrange(len(flat))] for _ in range(n)])
        assert [[c.tobytes() for c in a.components] for a in got] == \
            [[c.tobytes() for c in a.components] for a in want]
    assert server.exchanges == 5 and server.stats()["pool_islands"] == 3


def test_the_experiment_candidate_is_exactly_the_best_individual():
    """Candidates cross processes as JSON lists, not as text (which keeps 6 digits of a
    constant and so could hand T_select an algorithm the search never evaluated)."""
    config = IslandsConfig(num_islands=3, migration_interval=0)
    g, _ = group(config, evaluate_fn=FakeEvaluator(), child_batch_size=5)
    for _ in range(4):
        g.step()
    best_island = max(g.islands, key=lambda i: (i.search.candidate().fitness, -i.index))
    want = best_island.search.candidate().algorithm
    got = islands._result(json.loads(json.dumps(g.candidates())), 1.0, {}, 0, {}).algorithm
    assert [c.tobytes() for c in got.components] == [c.tobytes() for c in want.components]
    constants = np.concatenate([c["d"] for c in want.components])
    assert any(float(f"{x:g}") != x for x in constants if np.isfinite(x))  # text would round


def test_migration_server_checkpoint_resumes_its_pools_and_draws(tmp_path):
    from conftest import ProgramGenerator
    gen = ProgramGenerator(np.random.default_rng(7))
    server = MigrationServer(seed=3)
    for island in (0, 1, 2):
        server.exchange(island, [gen.algorithm((4, 3, 1)) for _ in range(4)])
    path = str(tmp_path / "server.npz")
    server.save(path)
    resumed = islands.open_server(99, str(tmp_path))  # the saved RNG wins over the seed
    assert resumed.exchanges == 3 and sorted(resumed.pools) == [0, 1, 2]
    upload = [gen.algorithm((4, 3, 1)) for _ in range(3)]
    want, got = server.exchange(1, upload), resumed.exchange(1, upload)
    assert [[c.tobytes() for c in a.components] for a in got] == \
        [[c.tobytes() for c in a.components] for a in want]
    assert resumed.restarts == 0  # registrations belong to the run, not the checkpoint
    (tmp_path / "bad.npz").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.npz: not an azero_jax checkpoint"):
        MigrationServer().load(str(tmp_path / "bad.npz"))
