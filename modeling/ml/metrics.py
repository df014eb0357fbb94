"""Accuracy with Wilson intervals, overall and by subgroup (pure numpy/pandas)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

Z95 = 1.959964
MIN_N = 30


def wilson(count: int, n: int, *, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for count/n (METHODS.md); (nan, nan) when n is 0."""
    if n == 0:
        return (math.nan, math.nan)
    p = count / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def accuracy_row(correct: np.ndarray) -> dict[str, Any]:
    n = int(correct.size)
    count = int(correct.sum())
    low, high = wilson(count, n)
    return {
        "n": n,
        "correct": count,
        "accuracy": count / n if n else None,
        "low": None if n == 0 else low,
        "high": None if n == 0 else high,
    }


def binary_summary(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict:
    """Accuracy, interval, confusion counts and mean loss of out-of-fold predictions."""
    predicted = (probabilities >= threshold).astype(int)
    correct = predicted == labels
    eps = 1e-7
    p = np.clip(probabilities, eps, 1 - eps)
    log_loss = float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))
    return {
        **accuracy_row(correct),
        "log_loss": log_loss,
        "tp": int(((predicted == 1) & (labels == 1)).sum()),
        "fp": int(((predicted == 1) & (labels == 0)).sum()),
        "tn": int(((predicted == 0) & (labels == 0)).sum()),
        "fn": int(((predicted == 0) & (labels == 1)).sum()),
    }


def accuracy_by_subgroup(
    frame: pd.DataFrame, *, attributes: Sequence[str], min_n: int = MIN_N
) -> dict[str, list[dict[str, Any]]]:
    """Per attribute, one row per value: n, accuracy, Wilson interval, and `too_few` below min_n.

    `frame` has a boolean `correct` column and one column per attribute; an empty value is
    reported as "unknown".
    """
    result: dict[str, list[dict[str, Any]]] = {}
    for attribute in attributes:
        if attribute not in frame:
            continue
        values = frame[attribute].fillna("").astype(str).replace("", "unknown")
        rows = []
        for value, part in frame["correct"].groupby(values, sort=True):
            row = accuracy_row(part.to_numpy(dtype=bool))
            rows.append({"value": value, **row, "too_few": row["n"] < min_n})
        result[attribute] = rows
    return result
