"""Tests of hurdles (paper S3): the percentile and the search's first stage."""

import numpy as np
import pytest

from azero_jax.hurdles import HurdlesConfig, hurdle_value


def test_percentile_of_unique_fitnesses():
    # Duplicates do not move the hurdle: unique values are 0, 0.5, 1.
    assert hurdle_value([0.0] * 50 + [0.5, 1.0, 1.0], 75) == pytest.approx(0.75)
    assert hurdle_value([0.2, 0.4, 0.6, 0.8, 1.0], 75) == pytest.approx(0.8)
    assert hurdle_value([0.3], 75) == pytest.approx(0.3)
    values = np.random.RandomState(0).rand(101)
    assert hurdle_value(values, 50) == pytest.approx(np.median(values))


def test_config_validation():
    with pytest.raises(ValueError, match="num_train_examples > 0 or num_tasks > 0"):
        HurdlesConfig(75.0, 0, 0)
    with pytest.raises(ValueError, match="percentile"):
        HurdlesConfig(120.0, 10, 0)
