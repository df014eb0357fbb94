"""Summaries of out-of-fold predictions that only training needs (log loss, confusion counts).

Accuracy and its interval come from modeling.evaluation, the one definition the pages use.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modeling.evaluation import wilson_bounds


def binary_summary(
    labels: np.ndarray, probabilities: np.ndarray, threshold: float
) -> dict[str, Any]:
    """Accuracy with its Wilson interval (low, high; None when there are no faces), confusion
    counts and mean log loss of out-of-fold predictions."""
    predicted = (probabilities >= threshold).astype(int)
    n = int(labels.size)
    correct = int((predicted == labels).sum())
    low, high = wilson_bounds(correct, n)
    eps = 1e-7
    p = np.clip(probabilities, eps, 1 - eps)
    log_loss = float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))
    return {
        "n": n,
        "correct": correct,
        "accuracy": correct / n if n else None,
        "low": low,
        "high": high,
        "log_loss": log_loss,
        "tp": int(((predicted == 1) & (labels == 1)).sum()),
        "fp": int(((predicted == 1) & (labels == 0)).sum()),
        "tn": int(((predicted == 0) & (labels == 0)).sum()),
        "fn": int(((predicted == 0) & (labels == 1)).sum()),
    }
