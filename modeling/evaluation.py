"""Accuracy by subgroup with Wilson intervals, confusion matrices, calibration.

Pure pandas/numpy (no Django): the numbers researchers print, defined once (METHODS.md,
"Accuracy and intervals") and tested against statsmodels and an independent pandas
computation.

Input frames have one row per face with a `truth` column (the human consensus label), a
`predicted` column (the model's label) and, for calibration, a `probability` column
(P(positive class)). Subgroup attributes are further columns; an empty or missing value
means "not known" and forms no subgroup.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd

Z95 = 1.959964
MIN_N = 30
GAP = 0.05
INTERSECTION_SEPARATOR = " × "
OVERALL = "overall"
ALL = "all"

RESULT_COLUMNS = [
    "attribute",
    "group",
    "n",
    "correct",
    "accuracy",
    "ci_low",
    "ci_high",
    "gap",
    "too_few",
    "flagged",
]


def wilson_interval(
    count: np.ndarray | float, nobs: np.ndarray | float, *, z: float = Z95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for count/nobs (vectorized); NaN where nobs is 0.

    Same formula as statsmodels' proportion_confint(method="wilson").
    """
    count = np.asarray(count, dtype=float)
    nobs = np.asarray(nobs, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = count / nobs
        z2 = z * z
        denom = 1.0 + z2 / nobs
        centre = (p + z2 / (2 * nobs)) / denom
        half = z / denom * np.sqrt(p * (1 - p) / nobs + z2 / (4 * nobs * nobs))
        # At 0 or n successes the bound is exactly 0 or 1; rounding would leave 1e-16 off.
        low = np.where(count == 0, 0.0, np.clip(centre - half, 0.0, 1.0))
        high = np.where(count == nobs, 1.0, np.clip(centre + half, 0.0, 1.0))
        low = np.where(nobs > 0, low, np.nan)
        high = np.where(nobs > 0, high, np.nan)
    return low, high


def _known(values: pd.Series) -> pd.Series:
    return values.notna() & (values.astype(str) != "")


def _rows(attribute: str, keys: pd.Series, correct: pd.Series) -> pd.DataFrame:
    grouped = correct.groupby(keys, sort=True).agg(["size", "sum"])
    return pd.DataFrame(
        {
            "attribute": attribute,
            "group": grouped.index.astype(str),
            "n": grouped["size"].to_numpy(dtype=int),
            "correct": grouped["sum"].to_numpy(dtype=int),
        }
    )


def accuracy_by_group(
    frame: pd.DataFrame,
    *,
    attributes: Sequence[str],
    intersections: bool = True,
    min_n: int = MIN_N,
    gap: float = GAP,
    z: float = Z95,
    truth: str = "truth",
    predicted: str = "predicted",
) -> pd.DataFrame:
    """Accuracy overall, for every value of each attribute and every two-way intersection.

    Returns one row per group with RESULT_COLUMNS, the overall row first (attribute
    "overall", group "all"). Intersections are named "a × b" with groups "x × y". Rows with
    n below `min_n` are marked `too_few` and never flagged; a row is flagged when its
    interval's upper bound lies below the overall accuracy or its accuracy is more than
    `gap` below the overall. `gap` is the overall accuracy minus the group's.
    """
    if min_n < 1:
        raise ValueError(f"min_n must be at least 1, got {min_n}")
    if not 0 <= gap <= 1:
        raise ValueError(f"gap must lie in [0, 1], got {gap}")
    missing = [c for c in (truth, predicted, *attributes) if c not in frame.columns]
    if missing:
        raise ValueError(f"columns missing from the frame: {missing}")
    correct = (frame[truth].astype(str) == frame[predicted].astype(str)).astype(int)
    parts = [
        pd.DataFrame(
            {
                "attribute": [OVERALL],
                "group": [ALL],
                "n": [len(frame)],
                "correct": [int(correct.sum())],
            }
        )
    ]
    for attribute in attributes:
        known = _known(frame[attribute])
        parts.append(_rows(attribute, frame.loc[known, attribute].astype(str), correct[known]))
    if intersections:
        for a, b in combinations(attributes, 2):
            known = _known(frame[a]) & _known(frame[b])
            keys = (
                frame.loc[known, a].astype(str)
                + INTERSECTION_SEPARATOR
                + frame.loc[known, b].astype(str)
            )
            parts.append(_rows(f"{a}{INTERSECTION_SEPARATOR}{b}", keys, correct[known]))
    result = pd.concat(parts, ignore_index=True)
    n = result["n"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        result["accuracy"] = np.where(n > 0, result["correct"] / n, np.nan)
    result["ci_low"], result["ci_high"] = wilson_interval(result["correct"], n, z=z)
    overall = result.loc[0, "accuracy"]
    result["gap"] = overall - result["accuracy"]
    result["too_few"] = result["n"] < min_n
    below = (result["ci_high"] < overall) | (result["gap"] > gap + 1e-12)
    result["flagged"] = below & ~result["too_few"] & (result["attribute"] != OVERALL)
    result.loc[0, "gap"] = 0.0
    return result[RESULT_COLUMNS]


def confusion_matrix(
    truth: Sequence[str] | pd.Series, predicted: Sequence[str] | pd.Series, classes: Sequence[str]
) -> pd.DataFrame:
    """Counts with true classes as rows and predicted classes as columns (in `classes` order).

    Labels outside `classes` are ignored.
    """
    table = pd.crosstab(
        pd.Series(list(truth), name="truth"), pd.Series(list(predicted), name="predicted")
    )
    return table.reindex(index=list(classes), columns=list(classes), fill_value=0).astype(int)


def precision_recall(
    truth: Sequence[str] | pd.Series, predicted: Sequence[str] | pd.Series, classes: Sequence[str]
) -> pd.DataFrame:
    """Per class: support, precision, recall and F1 (NaN where undefined)."""
    cm = confusion_matrix(truth, predicted, classes).to_numpy(dtype=float)
    tp = np.diag(cm)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = tp / cm.sum(axis=0)
        recall = tp / cm.sum(axis=1)
        f1 = 2 * precision * recall / (precision + recall)
    return pd.DataFrame(
        {
            "class": list(classes),
            "support": cm.sum(axis=1).astype(int),
            "precision": precision,
            "recall": recall,
            "f1": f1,
        }
    )


def calibration_bins(
    is_positive: Sequence[bool] | np.ndarray,
    probability: Sequence[float] | np.ndarray,
    *,
    bins: int = 10,
) -> pd.DataFrame:
    """Reliability table: equal-width probability bins with n, mean predicted and observed rate.

    Empty bins are kept with n = 0 (and NaN rates), so the diagram always has `bins` slots.
    The last bin includes 1.0.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    y = np.asarray(is_positive, dtype=float)
    p = np.asarray(probability, dtype=float)
    if y.shape != p.shape:
        raise ValueError("is_positive and probability must have the same length")
    if p.size and (np.nanmin(p) < 0 or np.nanmax(p) > 1):
        raise ValueError("probabilities must lie in [0, 1]")
    index = np.minimum((p * bins).astype(int), bins - 1)
    n = np.bincount(index, minlength=bins)
    sum_p = np.bincount(index, weights=p, minlength=bins)
    sum_y = np.bincount(index, weights=y, minlength=bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_p = np.where(n > 0, sum_p / n, np.nan)
        observed = np.where(n > 0, sum_y / n, np.nan)
    edges = np.linspace(0.0, 1.0, bins + 1)
    return pd.DataFrame(
        {
            "bin_low": edges[:-1],
            "bin_high": edges[1:],
            "n": n.astype(int),
            "mean_predicted": mean_p,
            "observed": observed,
        }
    )


def expected_calibration_error(table: pd.DataFrame) -> float:
    """Weighted mean |observed − mean predicted| over the non-empty bins of a reliability table."""
    used = table[table["n"] > 0]
    if used.empty:
        return float("nan")
    weights = used["n"] / used["n"].sum()
    return float((weights * (used["observed"] - used["mean_predicted"]).abs()).sum())
