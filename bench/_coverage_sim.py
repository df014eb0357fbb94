"""The simulation that validates the estimator (modeling.estimates), for its benchmark.

Draw groups with a known female share, classify them with known error rates, draw a
validation sample, and see how often the bootstrap interval covers the truth; used by
bench/estimates_coverage.py and its test (tests/bench/test_coverage_sim.py).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from modeling.estimates import (  # noqa: E402
    LEVEL,
    ErrorRates,
    binomial_draws,
    bootstrap_interval,
    raw_bias,
    rogan_gladen,
)


@dataclass(frozen=True)
class CoverageResult:
    replications: int
    corrected_coverage: float
    raw_coverage: float
    raw_bias: float
    expected_raw_bias: float
    corrected_bias: float

    def as_dict(self) -> dict[str, float | int]:
        return self.__dict__.copy()


def simulate_coverage(
    *,
    true_share: float,
    sensitivity: float,
    specificity: float,
    faces: int,
    validation_faces: int,
    validation_share: float = 0.5,
    replications: int = 300,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = LEVEL,
) -> CoverageResult:
    """Replicate: draw a group of `faces` with a true female share, classify with known error
    rates, draw a validation sample, and bootstrap. All replications run as one array job.
    """
    rng = np.random.default_rng(seed)
    q_true = sensitivity * true_share + (1 - specificity) * (1 - true_share)
    k = rng.binomial(faces, q_true, size=replications)
    positives = rng.binomial(validation_faces, validation_share, size=replications)
    tp = rng.binomial(positives, sensitivity)
    tn = rng.binomial(validation_faces - positives, specificity)
    rates = [
        ErrorRates(int(a), int(p - a), int(validation_faces - p - b), int(b))
        for a, p, b in zip(tp, positives, tn, strict=True)
    ]
    n = np.full(replications, faces)
    q_draws = binomial_draws(k, n, n_boot=n_boot, rng=rng)
    interval = bootstrap_interval(q_draws, rates, rng=rng, level=level)
    q_hat = k / faces
    se_hat = np.array([r.sensitivity for r in rates])
    sp_hat = np.array([r.specificity for r in rates])
    corrected = np.clip(rogan_gladen(q_hat, se_hat, sp_hat), 0, 1)
    covered = (interval.low <= true_share) & (true_share <= interval.high)
    raw_covered = (interval.raw_low <= true_share) & (true_share <= interval.raw_high)
    return CoverageResult(
        replications=replications,
        corrected_coverage=float(np.mean(covered)),
        raw_coverage=float(np.mean(raw_covered)),
        raw_bias=float(np.mean(q_hat) - true_share),
        expected_raw_bias=raw_bias(true_share, sensitivity, specificity),
        corrected_bias=float(np.nanmean(corrected) - true_share),
    )
