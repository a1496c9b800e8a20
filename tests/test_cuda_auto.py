"""``backend="auto"`` on a GPU: the choice between jax and cuda from committed figures.

The choice logic runs with a fake device (a name and a list of figures): no GPU and no
numba-cuda needed, so this file is in the default suite.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

import azero_jax as az
from azero_jax.backends import auto_backend
from azero_jax.backends import evaluator as evaluator_lib

H100 = "NVIDIA H100 80GB HBM3"


def _record(backend, rate, batch, F=16, dtype="float32", device=H100):
    platform = "cuda" if backend == "cuda" else "gpu"
    return {"device": f"{platform}: {device}", "backend": backend, "dtype": dtype,
            "batch_size": batch, "features_size": F, "steps_per_s": rate}


FIGURES = [_record("jax", 50e6, 1024), _record("cuda", 20e6, 1024),
           _record("jax", 60e6, 1 << 20), _record("cuda", 300e6, 1 << 20),
           _record("cuda", 900e6, 1 << 20, F=4), _record("jax", 100e6, 1 << 20, F=4)]


def test_without_figures_picks_jax_and_says_so():
    backend, reason = auto_backend.choose(H100, features_size=16, num_pairs=1000,
                                          figures=[], cuda_available=True)
    assert backend == "jax" and "no committed figures" in reason and H100 in reason


def test_committed_figures_decide_by_shape():
    choose = lambda **shape: auto_backend.choose(H100, figures=FIGURES, cuda_available=True,  # noqa: E731
                                                 **shape)
    assert choose(features_size=16, num_pairs=1000)[0] == "jax"  # small batches: jax
    big, reason = choose(features_size=16, num_pairs=1_000_000)
    assert big == "cuda" and "300.0 M steps/s" in reason
    assert choose(features_size=4, num_pairs=100_000)[0] == "cuda"  # F=4: measured at 1 M


def test_other_devices_dtypes_and_missing_numba_cuda_fall_back_to_jax():
    for kwargs in (dict(device_kind="NVIDIA A100-SXM4-40GB"), dict(dtype="float64")):
        shape = dict(features_size=16, num_pairs=1 << 20)
        device = kwargs.pop("device_kind", H100)
        assert auto_backend.choose(device, figures=FIGURES, cuda_available=True, **shape,
                                   **kwargs)[0] == "jax"
    backend, reason = auto_backend.choose(H100, features_size=16, num_pairs=1 << 20,
                                          figures=FIGURES, cuda_available=False)
    assert backend == "jax" and "numba-cuda" in reason


def test_auto_on_a_fake_gpu_uses_the_choice_and_logs_it(monkeypatch, caplog):
    """evaluate_pairs(backend="auto") on a (fake) GPU passes the workload's shape to the
    choice, logs the reason, and runs the chosen backend."""
    import jax

    seen = {}

    def fake_choose(device_kind, **shape):
        seen.update(shape, device_kind=device_kind)
        return "cpu", "auto: fake choice"  # run on the CPU, so the test needs no GPU

    class FakeDevice:
        device_kind = H100

    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    monkeypatch.setattr(jax, "devices", lambda *a: [FakeDevice()])
    monkeypatch.setattr(auto_backend, "choose", fake_choose)
    monkeypatch.setattr(auto_backend, "_SAID", set())
    task = az.tasks.scalar_linear_regression_task(4, 20, 10, data_seed=1, param_seed=2)
    with caplog.at_level(logging.INFO, logger="azero_jax"):
        results = az.evaluate_pairs([az.generator.linear_model(0.01)], [task], np.zeros(3, int),
                                    np.zeros(3, int), memory=az.MemoryConfig(4, 3, 1),
                                    backend="auto", dtype="float64", num_threads=1)
    assert seen == dict(device_kind=H100, features_size=4, num_pairs=3, dtype="float64",
                        cuda_available=seen["cuda_available"])
    assert "auto: fake choice" in caplog.text
    assert results.fitness.shape == (3,) and (results.fitness > 0).all()


def test_cuda_is_a_backend():
    assert "cuda" in evaluator_lib.BACKENDS
    with pytest.raises(ValueError, match="backend must be one of"):
        evaluator_lib.resolve_backend("cuda2")
