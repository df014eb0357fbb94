"""The simulation that validates the estimator: the corrected interval covers the truth."""

from __future__ import annotations

import pytest

from bench._coverage_sim import simulate_coverage


def test_corrected_interval_covers_the_truth_and_raw_share_is_biased():
    result = simulate_coverage(
        true_share=0.3,
        sensitivity=0.9,
        specificity=0.85,
        faces=1000,
        validation_faces=400,
        replications=400,
        n_boot=1000,
        seed=20261129,
    )
    assert result.corrected_coverage >= 0.93
    assert result.raw_coverage < 0.2
    assert result.expected_raw_bias == pytest.approx((0.9 + 0.85 - 1) * 0.3 + 0.15 - 0.3)
    assert result.raw_bias == pytest.approx(result.expected_raw_bias, abs=0.005)
    assert abs(result.corrected_bias) < 0.01


def test_simulation_is_seeded():
    kwargs = dict(
        true_share=0.6,
        sensitivity=0.8,
        specificity=0.95,
        faces=300,
        validation_faces=200,
        replications=50,
        n_boot=200,
    )
    assert simulate_coverage(seed=4, **kwargs) == simulate_coverage(seed=4, **kwargs)
