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

import operator
from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd

Z95 = 1.959964
MIN_N = 30
GAP = 0.05
ALPHA = 0.05
HOLM = "holm"
BH = "bh"
CORRECTIONS = {
    HOLM: "Holm (family-wise error rate)",
    BH: "Benjamini–Hochberg (false discovery rate)",
}
# Benjamini–Hochberg by default: on a round with no real gap every null is true, so its
# false-discovery rate is exactly the chance of flagging any group (what Holm controls); where
# a group really is worse, the intersections that contain it are worse too and BH lets each
# such p-value raise the bar less than Holm does. bench/flag_rates.py measures both.
DEFAULT_CORRECTION = BH
FLAG_TEST = "one-sided Fisher exact test of the group against the faces outside it"
UNKNOWN_CORRECTION = "Unknown correction {correction!r}; choose one of: {choices}."
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
    "p_value",
    "p_adjusted",
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


def wilson_bounds(count: int, nobs: int, *, z: float = Z95) -> tuple[float | None, float | None]:
    """The Wilson interval of one proportion as plain floats, (None, None) when nobs is 0."""
    low, high = wilson_interval(count, nobs, z=z)
    if nobs == 0:
        return None, None
    return float(low), float(high)


def fisher_less(
    count: np.ndarray | int,
    nobs: np.ndarray | int,
    rest_count: np.ndarray | int,
    rest_nobs: np.ndarray | int,
) -> np.ndarray:
    """One-sided Fisher exact p-value that a group's rate is below the rest's (vectorized).

    With the margins fixed, the group's count is hypergeometric; p = P(X ≤ count), as
    scipy's `fisher_exact([[count, nobs - count], [rest_count, rest_nobs - rest_count]],
    alternative="less")`. NaN where either side is empty.
    """
    count, nobs, rest_count, rest_nobs = (
        np.atleast_1d(np.asarray(v, dtype=int)) for v in (count, nobs, rest_count, rest_nobs)
    )
    total = nobs + rest_nobs
    size = int(total.max(initial=0))
    # log k! for k = 0..size, so every term is a ratio of binomial coefficients.
    log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, size + 1)))])
    p = np.full(count.shape, np.nan)
    for i, (c, n, r, m) in enumerate(zip(count, nobs, rest_count, rest_nobs, strict=True)):
        if n == 0 or m == 0:
            continue
        successes, failures = c + r, n + m - c - r
        x = np.arange(max(0, n - failures), c + 1)
        log_pmf = (
            log_fact[successes]
            - log_fact[x]
            - log_fact[successes - x]
            + log_fact[failures]
            - log_fact[n - x]
            - log_fact[failures - n + x]
            - (log_fact[n + m] - log_fact[n] - log_fact[m])
        )
        p[i] = min(1.0, float(np.exp(log_pmf).sum()))
    return p


def p_adjust(
    p_values: np.ndarray | Sequence[float], *, correction: str = DEFAULT_CORRECTION
) -> np.ndarray:
    """Adjusted p-values for multiple comparisons (Holm or Benjamini–Hochberg), NaN kept.

    NaNs are not tests: they are left NaN and do not count in the family. Same values as
    statsmodels' `multipletests(p, method="holm" / "fdr_bh")[1]`.
    """
    if correction not in CORRECTIONS:
        raise ValueError(
            UNKNOWN_CORRECTION.format(correction=correction, choices=", ".join(CORRECTIONS))
        )
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    m = tested.size
    if m == 0:
        return adjusted
    order = tested[np.argsort(p[tested], kind="stable")]
    ranked = p[order]
    rank = np.arange(1, m + 1)
    if correction == HOLM:
        stepped = np.maximum.accumulate((m - rank + 1) * ranked)
    else:
        stepped = np.minimum.accumulate(((m / rank) * ranked)[::-1])[::-1]
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


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
    alpha: float = ALPHA,
    correction: str = DEFAULT_CORRECTION,
    z: float = Z95,
    truth: str = "truth",
    predicted: str = "predicted",
) -> pd.DataFrame:
    """Accuracy overall, for every value of each attribute and every two-way intersection.

    Returns one row per group with RESULT_COLUMNS, the overall row first (attribute
    "overall", group "all"). Intersections are named "a × b" with groups "x × y".

    The flag (METHODS.md, "Accuracy and intervals"): every group with at least `min_n` faces
    is tested against the faces of the round outside it (FLAG_TEST); `p_value` is that test,
    `p_adjusted` the same after `correction` over all tested groups of the round. A group is
    flagged when `p_adjusted` ≤ `alpha` and, on top, its accuracy is at least `gap` below
    the rest's (`gap` = 0 drops the practical-size condition). `gap` in the rows is the rest's
    accuracy minus the group's. Rows below `min_n` are marked `too_few`, not tested (p NaN)
    and never flagged.
    """
    if min_n < 1:
        raise ValueError(f"min_n must be at least 1, got {min_n}")
    if not 0 <= gap <= 1:
        raise ValueError(f"gap must lie in [0, 1], got {gap}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie between 0 and 1, got {alpha}")
    if correction not in CORRECTIONS:
        raise ValueError(
            UNKNOWN_CORRECTION.format(correction=correction, choices=", ".join(CORRECTIONS))
        )
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
    total, total_correct = int(result.loc[0, "n"]), int(result.loc[0, "correct"])
    rest_n = total - result["n"].to_numpy(dtype=int)
    rest_correct = total_correct - result["correct"].to_numpy(dtype=int)
    with np.errstate(divide="ignore", invalid="ignore"):
        rest_accuracy = np.where(rest_n > 0, rest_correct / rest_n, np.nan)
    result["gap"] = rest_accuracy - result["accuracy"]
    result["too_few"] = result["n"] < min_n
    is_group = (result["attribute"] != OVERALL).to_numpy()
    tested = is_group & ~result["too_few"].to_numpy() & (rest_n > 0)
    p_value = np.full(len(result), np.nan)
    p_value[tested] = fisher_less(
        result["correct"].to_numpy(dtype=int)[tested],
        result["n"].to_numpy(dtype=int)[tested],
        rest_correct[tested],
        rest_n[tested],
    )
    result["p_value"] = p_value
    result["p_adjusted"] = p_adjust(p_value, correction=correction)
    # The gap condition can only narrow the flags the test allows, never widen them.
    result["flagged"] = (result["p_adjusted"] <= alpha) & (result["gap"] >= gap - 1e-12)
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


# Comparing two versions on the same faces (METHODS.md: "a paired test, McNemar's exact test
# on the discordant faces"). "a" is the version compared against, "b" the candidate, so a
# positive difference means the candidate is more accurate.
PAIRED_COLUMNS = [
    "attribute",
    "group",
    "n",
    "accuracy_a",
    "ci_low_a",
    "ci_high_a",
    "accuracy_b",
    "ci_low_b",
    "ci_high_b",
    "a_only",
    "b_only",
    "difference",
    "difference_low",
    "difference_high",
    "p_value",
    "too_few",
]
COUNT_NEGATIVE = "Counts must be whole numbers of at least 0; got {counts}."


def _whole_counts(*counts: int) -> tuple[int, ...]:
    try:
        whole = tuple(operator.index(v) for v in counts)
    except TypeError:
        raise ValueError(COUNT_NEGATIVE.format(counts=counts)) from None
    if any(v < 0 for v in whole):
        raise ValueError(COUNT_NEGATIVE.format(counts=counts))
    return whole


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts.

    `b` faces only the first version got right, `c` only the second. With no difference
    between the versions each discordant face is a fair coin, so p = min(1, 2·P(X ≤ min(b, c)))
    with X ~ Binomial(b + c, 1/2), as statsmodels' `mcnemar(table, exact=True)`; 1.0 when no
    face is discordant. Summed in exact integers, so large counts lose no precision.
    """
    b, c = _whole_counts(b, c)
    n, k = b + c, min(b, c)
    term = total = 1
    for i in range(k):
        term = term * (n - i) // (i + 1)
        total += term
    return float(min(1.0, 2 * total / 2**n))


def paired_difference_interval(
    *, both: int, a_only: int, b_only: int, neither: int, z: float = Z95
) -> tuple[float, float, float]:
    """Accuracy of b minus accuracy of a on the same faces, with Newcombe's (1998) hybrid
    score interval for paired proportions (his method 10): the two Wilson intervals combined
    through the correlation of the pairs. NaNs when there are no faces.
    """
    both, a_only, b_only, neither = _whole_counts(both, a_only, b_only, neither)
    n = both + a_only + b_only + neither
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    right_b, right_a = both + b_only, both + a_only
    p_b, p_a = right_b / n, right_a / n
    (low_b, high_b), (low_a, high_a) = (
        (float(v) for v in wilson_interval(right, n, z=z)) for right in (right_b, right_a)
    )
    # φ of the 2×2 table; Newcombe shrinks a positive product difference by n/2 so the
    # interval does not come out narrower than the data support.
    product = right_b * (n - right_b) * right_a * (n - right_a)
    cross: float = both * neither - b_only * a_only
    cross = cross - n / 2 if cross > n / 2 else min(cross, 0)
    phi = cross / np.sqrt(product) if product > 0 else 0.0
    difference = p_b - p_a
    down = (p_b - low_b) ** 2 - 2 * phi * (p_b - low_b) * (high_a - p_a) + (high_a - p_a) ** 2
    up = (high_b - p_b) ** 2 - 2 * phi * (high_b - p_b) * (p_a - low_a) + (p_a - low_a) ** 2
    return (
        difference,
        max(-1.0, difference - float(np.sqrt(max(down, 0.0)))),
        min(1.0, difference + float(np.sqrt(max(up, 0.0)))),
    )


def paired_by_group(
    frame: pd.DataFrame,
    *,
    attributes: Sequence[str],
    min_n: int = MIN_N,
    z: float = Z95,
    truth: str = "truth",
    predicted_a: str = "predicted_a",
    predicted_b: str = "predicted_b",
) -> pd.DataFrame:
    """Two versions on the same faces, overall and for every value of each attribute.

    `frame` has one row per face both versions predicted and humans labelled. Returns
    PAIRED_COLUMNS, the overall row first: each version's accuracy with its Wilson interval,
    the discordant counts, the difference (b − a) with Newcombe's paired interval and the
    exact McNemar p-value. Rows below `min_n` are marked `too_few`.
    """
    missing = [c for c in (truth, predicted_a, predicted_b, *attributes) if c not in frame]
    if missing:
        raise ValueError(f"columns missing from the frame: {missing}")
    right_a = frame[truth].astype(str) == frame[predicted_a].astype(str)
    right_b = frame[truth].astype(str) == frame[predicted_b].astype(str)
    groups: list[tuple[str, str, pd.Series]] = [(OVERALL, ALL, pd.Series(True, index=frame.index))]
    for attribute in attributes:
        values = frame[attribute]
        known = _known(values)
        for group in sorted(values[known].astype(str).unique()):
            groups.append((attribute, group, known & (values.astype(str) == group)))
    rows = []
    for attribute, group, mask in groups:
        a, b = right_a[mask], right_b[mask]
        both, a_only, b_only = int((a & b).sum()), int((a & ~b).sum()), int((~a & b).sum())
        n = int(mask.sum())
        difference, low, high = paired_difference_interval(
            both=both, a_only=a_only, b_only=b_only, neither=n - both - a_only - b_only, z=z
        )
        rows.append(
            {
                "attribute": attribute,
                "group": group,
                "n": n,
                "correct_a": both + a_only,
                "correct_b": both + b_only,
                "a_only": a_only,
                "b_only": b_only,
                "difference": difference,
                "difference_low": low,
                "difference_high": high,
                "p_value": mcnemar_exact(a_only, b_only),
                "too_few": n < min_n,
            }
        )
    result = pd.DataFrame(rows)
    n = result["n"].to_numpy(dtype=float)
    for side in ("a", "b"):
        correct = result[f"correct_{side}"].to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            result[f"accuracy_{side}"] = np.where(n > 0, correct / n, np.nan)
        result[f"ci_low_{side}"], result[f"ci_high_{side}"] = wilson_interval(correct, n, z=z)
    return result[PAIRED_COLUMNS]
