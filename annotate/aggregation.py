"""Votes to labels and agreement: majority vote, Dawid–Skene, κ, α, per-coder agreement.

Pure numpy/pandas (no Django). Every function takes a DataFrame with one row per vote and
the columns `item`, `coder`, `label`; labels, items and coders may be any hashable values.
Definitions follow METHODS.md. A tie is reported (`label` missing, `tie` True), never broken.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

COLUMNS = ("item", "coder", "label")
RESULT_COLUMNS = ["label", "confidence", "n_votes", "tie"]
MISSING_COLUMNS = "votes must have the columns item, coder, label; missing: {missing}"

# EM's stopping rule. On simulated crowds of 600 to 34,000 items EM needed 160-230 iterations
# to move no posterior by 1e-6, so the cap is a safety net well above that, not the usual end.
MAX_ITER = 500
TOLERANCE = 1e-6
CONVERGED = "converged after {iterations} iterations"
AT_CAP = (
    "stopped at the cap of {max_iter} iterations; change {change:.1e} > tolerance {tolerance:.0e}"
)
BAD_MAX_ITER = "max_iter must be at least 1, got {value}."
BAD_TOLERANCE = "tol must be positive, got {value}."

logger = logging.getLogger(__name__)


def _check(votes: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in COLUMNS if c not in votes.columns]
    if missing:
        raise ValueError(MISSING_COLUMNS.format(missing=", ".join(missing)))
    return votes.loc[:, list(COLUMNS)].dropna()


@dataclass(frozen=True)
class _Encoded:
    items: pd.Index
    coders: pd.Index
    labels: pd.Index
    item: np.ndarray  # per vote: item code
    coder: np.ndarray
    label: np.ndarray
    counts: np.ndarray  # items x labels


def _encode(votes: pd.DataFrame) -> _Encoded:
    votes = _check(votes)
    item, items = pd.factorize(votes["item"], sort=True)
    coder, coders = pd.factorize(votes["coder"], sort=True)
    label, labels = pd.factorize(votes["label"], sort=True)
    counts = np.zeros((len(items), len(labels)), dtype=np.int64)
    np.add.at(counts, (item, label), 1)
    return _Encoded(pd.Index(items), pd.Index(coders), pd.Index(labels), item, coder, label, counts)


def _empty_result() -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "label": pd.Series(dtype=object),
            "confidence": pd.Series(dtype=float),
            "n_votes": pd.Series(dtype=int),
            "tie": pd.Series(dtype=bool),
        }
    )
    frame.index.name = "item"
    return frame


def _result(enc: _Encoded, scores: np.ndarray, confidence: np.ndarray) -> pd.DataFrame:
    """Pick the top-scoring label per item; missing when the top is shared."""
    top = scores.max(axis=1, keepdims=True)
    is_top = np.isclose(scores, top, rtol=0, atol=1e-9)
    tie = is_top.sum(axis=1) > 1
    chosen = np.asarray(enc.labels, dtype=object)[scores.argmax(axis=1)]
    chosen[tie] = None
    frame = pd.DataFrame(
        {
            "label": chosen,
            "confidence": confidence,
            "n_votes": enc.counts.sum(axis=1),
            "tie": tie,
        },
        index=enc.items,
    )
    frame.index.name = "item"
    return frame


def majority_vote(votes: pd.DataFrame) -> pd.DataFrame:
    """One row per item: the most frequent label, its share of the votes, n_votes, tie.

    `label` is None where two or more labels share the top count; `confidence` is then the
    share of each of the tied labels.
    """
    enc = _encode(votes)
    if not len(enc.items):
        return _empty_result()
    n = enc.counts.sum(axis=1)
    confidence = enc.counts.max(axis=1) / n
    return _result(enc, enc.counts.astype(float), confidence)


def majority_label(labels: list[str]) -> str | None:
    """The unique most frequent value of `labels`, or None on a tie or no labels."""
    # Counted in Python: it runs on every vote over two or three labels, where an array
    # cost more than the count.
    counts = Counter(str(label) for label in labels)
    if not counts:
        return None
    (winner, top), *rest = counts.most_common(2)
    return None if rest and rest[0][1] == top else winner


@dataclass(frozen=True)
class Convergence:
    """How the EM loop ended: `change` is the largest move of an item posterior in the last
    iteration; `converged` is False when the loop stopped at `max_iter` instead.
    """

    iterations: int
    converged: bool
    change: float
    tolerance: float
    max_iter: int

    @property
    def message(self) -> str:
        if self.converged:
            return CONVERGED.format(iterations=self.iterations)
        return AT_CAP.format(max_iter=self.max_iter, change=self.change, tolerance=self.tolerance)

    def as_dict(self) -> dict[str, object]:
        return {
            "iterations": self.iterations,
            "converged": self.converged,
            "change": self.change,
            "tolerance": self.tolerance,
            "max_iter": self.max_iter,
            "message": self.message,
        }


@dataclass(frozen=True)
class DawidSkeneFit:
    """The EM's result: the per-item labels (METHODS.md contract), the estimated parameters
    that produced them, and how the loop ended.
    """

    labels: pd.DataFrame  # one row per item: label, confidence, n_votes, tie
    classes: pd.Index
    coders: pd.Index
    confusion: np.ndarray  # coders x true class x given label; each row sums to 1
    prior: np.ndarray  # per true class
    coder_votes: pd.Series  # per coder: the votes its confusion was estimated from
    convergence: Convergence

    def coder_confusion(self, coder: object) -> pd.DataFrame:
        """Rows: the estimated true class; columns: what `coder` said; cells: P(said | true)."""
        table = self.confusion[self.coders.get_loc(coder)]
        return pd.DataFrame(table, index=self.classes, columns=self.classes)

    def coder_accuracy(self) -> pd.Series:
        """Per coder: the estimated chance of giving the true label, weighted by the priors."""
        diagonal = np.diagonal(self.confusion, axis1=1, axis2=2)
        return pd.Series(diagonal @ self.prior, index=self.coders)


def dawid_skene_fit(
    votes: pd.DataFrame,
    *,
    max_iter: int = MAX_ITER,
    tol: float = TOLERANCE,
    smoothing: float = 0.01,
) -> DawidSkeneFit:
    """Dawid & Skene (1979) EM over per-coder confusion matrices and class priors.

    Initialised from majority-vote shares; `smoothing` is added to every confusion cell and
    prior so unseen cells are not zero; stops when no item posterior moves more than `tol`,
    or after `max_iter` iterations, which `convergence` reports (and a warning is logged).
    `confidence` is the posterior of the chosen label; `label` is None where the top
    posteriors are equal.
    """
    if max_iter < 1:
        raise ValueError(BAD_MAX_ITER.format(value=max_iter))
    if not tol > 0:
        raise ValueError(BAD_TOLERANCE.format(value=tol))
    enc = _encode(votes)
    n_classes = len(enc.labels)
    n_coders = len(enc.coders)
    if not len(enc.items):
        return DawidSkeneFit(
            labels=_empty_result(),
            classes=enc.labels,
            coders=enc.coders,
            confusion=np.zeros((0, 0, 0)),
            prior=np.zeros(0),
            coder_votes=pd.Series(dtype=int),
            convergence=Convergence(0, True, 0.0, tol, max_iter),
        )
    n_items = len(enc.items)
    # Each vote's (coder, given label) cell, flattened, so both steps are bincounts.
    cell = enc.coder * n_classes + enc.label
    posterior = enc.counts / enc.counts.sum(axis=1, keepdims=True)
    iterations, change = 0, float("inf")
    while iterations < max_iter and change >= tol:
        iterations += 1
        # M step: class priors and each coder's confusion (true class x given label): every
        # vote adds its item's posterior over true classes to (coder, :, given).
        prior = posterior.sum(axis=0) + smoothing
        prior /= prior.sum()
        weights = posterior[enc.item]
        given = np.stack(  # (coder, given label) cells x true class
            [
                np.bincount(cell, weights=weights[:, k], minlength=n_coders * n_classes)
                for k in range(n_classes)
            ],
            axis=1,
        )
        confusion = given.reshape(n_coders, n_classes, n_classes).transpose(0, 2, 1) + smoothing
        confusion /= confusion.sum(axis=2, keepdims=True)
        # E step: log posterior per item = log prior + sum of log confusion of its votes.
        log_given = np.log(confusion)[enc.coder, :, enc.label]  # votes x true class
        log_post = np.log(prior) + np.stack(
            [
                np.bincount(enc.item, weights=log_given[:, k], minlength=n_items)
                for k in range(n_classes)
            ],
            axis=1,
        )
        log_post -= log_post.max(axis=1, keepdims=True)
        updated = np.exp(log_post)
        updated /= updated.sum(axis=1, keepdims=True)
        change = float(np.abs(updated - posterior).max())
        posterior = updated
    convergence = Convergence(iterations, change < tol, change, tol, max_iter)
    if not convergence.converged:
        logger.warning("Dawid–Skene %s", convergence.message)
    return DawidSkeneFit(
        labels=_result(enc, posterior, posterior.max(axis=1)),
        classes=enc.labels,
        coders=enc.coders,
        confusion=confusion,
        prior=prior,
        coder_votes=pd.Series(np.bincount(enc.coder, minlength=n_coders), index=enc.coders),
        convergence=convergence,
    )


def dawid_skene(
    votes: pd.DataFrame,
    *,
    max_iter: int = MAX_ITER,
    tol: float = TOLERANCE,
    smoothing: float = 0.01,
) -> pd.DataFrame:
    """The labels of `dawid_skene_fit`, with its convergence in `attrs["convergence"]`."""
    fit = dawid_skene_fit(votes, max_iter=max_iter, tol=tol, smoothing=smoothing)
    labels = fit.labels
    labels.attrs["convergence"] = fit.convergence.as_dict()
    return labels


AGGREGATORS = {"majority": majority_vote, "dawid_skene": dawid_skene}


def aggregate(votes: pd.DataFrame, *, method: str = "majority") -> pd.DataFrame:
    """The aggregate by a study's chosen method (`majority` or `dawid_skene`)."""
    try:
        aggregator = AGGREGATORS[method]
    except KeyError:
        raise ValueError(
            f"Unknown aggregation {method!r}; choose one of {', '.join(AGGREGATORS)}."
        ) from None
    return aggregator(votes)


# --- agreement ----------------------------------------------------------------------------


def coding_table(votes: pd.DataFrame) -> pd.DataFrame:
    """Items x labels: how many coders gave each label to each item."""
    enc = _encode(votes)
    return pd.DataFrame(enc.counts, index=enc.items, columns=enc.labels)


def percent_agreement(votes: pd.DataFrame) -> float:
    """Share of agreeing coder pairs per item, averaged over items with at least two votes."""
    counts = _encode(votes).counts
    n = counts.sum(axis=1)
    keep = n >= 2
    if not keep.any():
        return float("nan")
    counts, n = counts[keep], n[keep]
    agreeing = (counts * (counts - 1)).sum(axis=1)
    return float(np.mean(agreeing / (n * (n - 1))))


@dataclass(frozen=True)
class Kappa:
    kappa: float
    raters: int
    items: int
    excluded: int

    @property
    def defined(self) -> bool:
        """Whether κ has a value: NaN with one vote per face, or when every vote is alike."""
        return not np.isnan(self.kappa)


def fleiss_kappa(votes: pd.DataFrame, *, raters: int | None = None) -> Kappa:
    """Fleiss' κ over items with exactly `raters` votes (default: the most common count).

    Items with another number of votes are excluded and counted in `excluded`. Equals
    statsmodels' `fleiss_kappa(table, method="fleiss")` on the same table.
    """
    counts = _encode(votes).counts
    n = counts.sum(axis=1)
    if not len(n):
        return Kappa(float("nan"), raters or 0, 0, 0)
    if raters is None:
        values, freq = np.unique(n, return_counts=True)
        raters = int(values[freq.argmax()])
    keep = n == raters
    table = counts[keep].astype(float)
    excluded = int((~keep).sum())
    if len(table) == 0 or raters < 2:
        return Kappa(float("nan"), raters, int(len(table)), excluded)
    p_j = table.sum(axis=0) / (len(table) * raters)
    p_i = ((table * table).sum(axis=1) - raters) / (raters * (raters - 1))
    p_bar, p_e = p_i.mean(), (p_j * p_j).sum()
    kappa = float("nan") if np.isclose(p_e, 1.0) else float((p_bar - p_e) / (1 - p_e))
    return Kappa(kappa, raters, int(len(table)), excluded)


def krippendorff_alpha_nominal(votes: pd.DataFrame) -> float:
    """Krippendorff's α for nominal data; items may have any number of votes (≥ 2 count)."""
    counts = _encode(votes).counts.astype(float)
    m = counts.sum(axis=1)
    counts, m = counts[m >= 2], m[m >= 2]
    if not len(m):
        return float("nan")
    # Coincidence matrix: o_ck = sum over items of n_c (n_k - [c == k]) / (m - 1).
    weighted = counts / (m - 1)[:, None]
    coincidence = weighted.T @ counts - np.diag(weighted.sum(axis=0))
    n_c = coincidence.sum(axis=1)
    n = n_c.sum()
    disagreement_observed = coincidence.sum() - np.trace(coincidence)
    disagreement_expected = (n_c.sum() ** 2 - (n_c**2).sum()) / (n - 1)
    if disagreement_expected == 0:
        return float("nan")
    return float(1 - disagreement_observed / disagreement_expected)


def _leave_one_out(votes: pd.DataFrame) -> pd.DataFrame:
    """Each vote beside the majority of the OTHER coders on its item (None on tie/alone)."""
    enc = _encode(votes)
    others = enc.counts[enc.item] - np.eye(len(enc.labels), dtype=np.int64)[enc.label]
    top = others.max(axis=1)
    unique_top = (others == top[:, None]).sum(axis=1) == 1
    has_others = others.sum(axis=1) > 0
    reference = np.asarray(enc.labels, dtype=object)[others.argmax(axis=1)]
    reference[~(unique_top & has_others)] = None
    return pd.DataFrame(
        {
            "item": np.asarray(enc.items, dtype=object)[enc.item],
            "coder": np.asarray(enc.coders, dtype=object)[enc.coder],
            "label": np.asarray(enc.labels, dtype=object)[enc.label],
            "reference": reference,
        }
    )


def coder_agreement(votes: pd.DataFrame) -> pd.DataFrame:
    """Per coder: votes, votes with a leave-one-out majority, and agreement with it.

    Indexed by coder; columns `votes`, `compared`, `agreed`, `agreement` (NaN when nothing
    could be compared).
    """
    loo = _leave_one_out(votes)
    if loo.empty:
        return pd.DataFrame(columns=["votes", "compared", "agreed", "agreement"])
    loo["compared"] = loo["reference"].notna()
    loo["agreed"] = loo["compared"] & (loo["label"] == loo["reference"])
    table = loo.groupby("coder").agg(
        votes=("label", "size"), compared=("compared", "sum"), agreed=("agreed", "sum")
    )
    table["agreement"] = table["agreed"] / table["compared"].where(table["compared"] > 0)
    return table.sort_index()


def coder_confusion(votes: pd.DataFrame, coder: object) -> pd.DataFrame:
    """Rows: the leave-one-out majority of the others; columns: what `coder` said."""
    loo = _leave_one_out(votes)
    mine = loo[(loo["coder"] == coder) & loo["reference"].notna()]
    labels = sorted(set(_check(votes)["label"]), key=str)
    table = pd.crosstab(mine["reference"], mine["label"])
    return table.reindex(index=labels, columns=labels, fill_value=0)
