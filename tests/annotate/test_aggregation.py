"""Aggregation and agreement against independent references (statsmodels, textbook values)."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from annotate.aggregation import (
    AGGREGATORS,
    MISSING_COLUMNS,
    aggregate,
    coder_agreement,
    coder_confusion,
    coding_table,
    dawid_skene,
    fleiss_kappa,
    krippendorff_alpha_nominal,
    majority_label,
    majority_vote,
    percent_agreement,
)


def frame(rows):
    return pd.DataFrame(rows, columns=["item", "coder", "label"])


def simulated(n_items=400, coders=5, accuracy=(0.95, 0.9, 0.85, 0.55, 0.5), seed=0, k=3):
    """Binary truth; each item labeled by k random coders of given accuracies."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n_items)
    rows = []
    for item in range(n_items):
        for coder in rng.choice(coders, size=k, replace=False):
            correct = rng.random() < accuracy[coder]
            label = truth[item] if correct else 1 - truth[item]
            rows.append((item, f"c{coder}", "female" if label else "male"))
    labels = np.where(truth == 1, "female", "male")
    return frame(rows), pd.Series(labels, index=range(n_items))


def test_majority_vote_picks_the_most_frequent_label_with_its_share():
    votes = frame([(1, "a", "f"), (1, "b", "f"), (1, "c", "m"), (2, "a", "m")])
    result = majority_vote(votes)
    assert result.loc[1, "label"] == "f"
    assert result.loc[1, "confidence"] == pytest.approx(2 / 3)
    assert result.loc[1, "n_votes"] == 3 and not result.loc[1, "tie"]
    assert result.loc[2, "label"] == "m" and result.loc[2, "confidence"] == 1.0


def test_majority_vote_reports_ties_instead_of_breaking_them():
    votes = frame([(1, "a", "f"), (1, "b", "m"), (2, "a", "f"), (2, "b", "m"), (2, "c", "x")])
    result = majority_vote(votes)
    assert result["tie"].all()
    assert result["label"].isna().all()


def test_majority_label_is_none_on_a_tie_or_nothing():
    assert majority_label(["a", "b", "a"]) == "a"
    assert majority_label(["a", "b"]) is None
    assert majority_label([]) is None


@given(st.lists(st.sampled_from(["female", "male", "not_face", "unsure"]), max_size=12))
def test_majority_label_is_the_label_more_frequent_than_every_other(labels):
    more_frequent = [
        label
        for label in set(labels)
        if all(labels.count(label) > labels.count(other) for other in set(labels) - {label})
    ]
    assert majority_label(labels) == (more_frequent[0] if more_frequent else None)


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="missing: label"):
        majority_vote(pd.DataFrame({"item": [1], "coder": [1]}))
    assert "{missing}" in MISSING_COLUMNS


def test_empty_votes_give_an_empty_result():
    empty = frame([])
    assert majority_vote(empty).empty and dawid_skene(empty).empty


def test_fleiss_kappa_equals_statsmodels():
    votes, _ = simulated(n_items=200, seed=3)
    mine = fleiss_kappa(votes)
    table = coding_table(votes).to_numpy()
    assert mine.raters == 3 and mine.items == 200 and mine.excluded == 0
    assert mine.kappa == pytest.approx(sm_fleiss_kappa(table, method="fleiss"), abs=1e-12)


def test_fleiss_kappa_excludes_and_counts_items_with_another_number_of_votes():
    votes, _ = simulated(n_items=50, seed=4)
    extra = frame([(0, "c9", "female"), (1000, "c1", "male")])
    result = fleiss_kappa(pd.concat([votes, extra]))
    assert result.items == 49 and result.excluded == 2
    kept = votes[votes["item"] != 0]
    assert result.kappa == pytest.approx(
        sm_fleiss_kappa(coding_table(kept).to_numpy(), method="fleiss"), abs=1e-12
    )


def test_krippendorff_alpha_matches_the_textbook_nominal_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", nominal example:
    # 4 observers, 12 units, missing values; alpha = 0.743.
    data = {
        "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    }
    rows = [
        (unit, coder, value)
        for coder, values in data.items()
        for unit, value in enumerate(values)
        if value is not None
    ]
    assert krippendorff_alpha_nominal(frame(rows)) == pytest.approx(0.743, abs=5e-4)


def test_perfect_agreement_gives_alpha_and_percent_of_one():
    votes = frame([(i, c, "f" if i % 2 else "m") for i in range(10) for c in "abc"])
    assert krippendorff_alpha_nominal(votes) == pytest.approx(1.0)
    assert percent_agreement(votes) == 1.0


def test_percent_agreement_averages_agreeing_pairs_per_item():
    # item 1: f f m -> 1 of 3 pairs agree; item 2: f f f -> all; item 3 has one vote: skipped
    votes = frame(
        [(1, "a", "f"), (1, "b", "f"), (1, "c", "m")]
        + [(2, "a", "f"), (2, "b", "f"), (2, "c", "f"), (3, "a", "m")]
    )
    assert percent_agreement(votes) == pytest.approx((1 / 3 + 1) / 2)


def test_coder_agreement_uses_the_leave_one_out_majority():
    votes = frame(
        [(1, "a", "f"), (1, "b", "f"), (1, "c", "m")]
        + [(2, "a", "m"), (2, "b", "m"), (2, "c", "m")]
        + [(3, "a", "f"), (3, "b", "m")]  # a single other: that coder's label is the reference
    )
    table = coder_agreement(votes)
    # a: item1 others(f,m) tie -> not compared; item2 agree; item3 other says m -> disagree
    assert table.loc["a", "compared"] == 2 and table.loc["a", "agreement"] == 0.5
    # c: item1 others f,f -> disagree; item2 agree
    assert table.loc["c", "compared"] == 2 and table.loc["c", "agreement"] == 0.5
    confusion = coder_confusion(votes, "c")
    assert confusion.loc["f", "m"] == 1 and confusion.loc["m", "m"] == 1
    assert confusion.to_numpy().sum() == 2


def test_dawid_skene_beats_majority_vote_when_some_coders_are_poor():
    votes, truth = simulated(n_items=600, seed=11, accuracy=(0.97, 0.95, 0.6, 0.55, 0.5))
    mv = majority_vote(votes)
    ds = dawid_skene(votes)
    mv_acc = (mv["label"] == truth.loc[mv.index]).mean()
    ds_acc = (ds["label"] == truth.loc[ds.index]).mean()
    assert ds_acc > mv_acc
    assert ((ds["confidence"] >= 0.5) & (ds["confidence"] <= 1)).all()


def test_dawid_skene_handles_100k_votes_quickly():
    votes, _ = simulated(n_items=34000, seed=2)
    start = time.perf_counter()
    result = dawid_skene(votes)
    assert time.perf_counter() - start < 5
    assert len(result) == 34000 and not math.isnan(result["confidence"].mean())


def test_aggregate_selects_the_method_and_refuses_unknown_ones():
    votes, _ = simulated(n_items=20)
    assert aggregate(votes, method="dawid_skene").equals(dawid_skene(votes))
    with pytest.raises(ValueError, match="majority, dawid_skene"):
        aggregate(votes, method="mode")


def test_a_key_error_inside_an_aggregator_is_not_reported_as_an_unknown_method(monkeypatch):
    def broken(votes):
        raise KeyError("coder")

    monkeypatch.setitem(AGGREGATORS, "majority", broken)
    votes, _ = simulated(n_items=5)
    with pytest.raises(KeyError, match="coder"):
        aggregate(votes, method="majority")
    with pytest.raises(ValueError, match="Unknown aggregation 'mode'"):
        aggregate(votes, method="mode")
