"""Accuracy by subgroup, Wilson intervals, confusion and calibration against references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.proportion import proportion_confint

from modeling.evaluation import (
    INTERSECTION_SEPARATOR,
    accuracy_by_group,
    calibration_bins,
    confusion_matrix,
    expected_calibration_error,
    precision_recall,
    wilson_interval,
)


def _random_frame(seed: int, n: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    truth = rng.choice(["female", "male"], size=n)
    flip = rng.random(n) < 0.12
    predicted = np.where(flip, np.where(truth == "female", "male", "female"), truth)
    return pd.DataFrame(
        {
            "truth": truth,
            "predicted": predicted,
            "race": rng.choice(["white", "black", "east_asian", ""], size=n),
            "glasses": rng.choice(["none", "glasses"], size=n, p=[0.8, 0.2]),
            "country": rng.choice(["de", "us", "in", "br"], size=n),
        }
    )


# z = 1.959964 (METHODS.md) against statsmodels' norm.ppf(0.975) = 1.95996398...: equal to 1e-7.
@pytest.mark.parametrize("count,nobs", [(0, 10), (10, 10), (7, 13), (1, 1), (950, 1000), (3, 400)])
def test_wilson_interval_equals_statsmodels(count, nobs):
    low, high = wilson_interval(count, nobs)
    ref_low, ref_high = proportion_confint(count, nobs, alpha=0.05, method="wilson")
    assert low == pytest.approx(ref_low, abs=1e-7)
    assert high == pytest.approx(ref_high, abs=1e-7)


def test_wilson_interval_is_vectorized_and_nan_for_empty_groups():
    rng = np.random.default_rng(3)
    nobs = rng.integers(1, 500, size=200)
    count = rng.integers(0, nobs + 1)
    low, high = wilson_interval(count, nobs)
    ref_low, ref_high = proportion_confint(count, nobs, alpha=0.05, method="wilson")
    np.testing.assert_allclose(low, ref_low, atol=1e-7)
    np.testing.assert_allclose(high, ref_high, atol=1e-7)
    empty_low, empty_high = wilson_interval(np.array([0]), np.array([0]))
    assert np.isnan(empty_low[0]) and np.isnan(empty_high[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grouped_accuracy_equals_an_independent_pandas_computation(seed):
    frame = _random_frame(seed)
    result = accuracy_by_group(frame, attributes=["race", "glasses", "country"]).set_index(
        ["attribute", "group"]
    )
    correct = frame["truth"] == frame["predicted"]
    assert result.loc[("overall", "all"), "accuracy"] == pytest.approx(correct.mean())
    for attribute in ["race", "glasses", "country"]:
        known = frame[frame[attribute] != ""]
        expected = (
            (known["truth"] == known["predicted"]).groupby(known[attribute]).agg(["mean", "size"])
        )
        for group, row in expected.iterrows():
            got = result.loc[(attribute, group)]
            assert got["n"] == row["size"]
            assert got["accuracy"] == pytest.approx(row["mean"])
            ref = proportion_confint(round(row["mean"] * row["size"]), row["size"], method="wilson")
            assert (got["ci_low"], got["ci_high"]) == pytest.approx(ref, abs=1e-7)
    assert ("race", "") not in result.index  # unknown values form no subgroup
    pair = frame[(frame["race"] != "")]
    expected = (pair["truth"] == pair["predicted"]).groupby([pair["race"], pair["glasses"]]).mean()
    for (race, glasses), accuracy in expected.items():
        row = result.loc[
            (f"race{INTERSECTION_SEPARATOR}glasses", f"{race}{INTERSECTION_SEPARATOR}{glasses}")
        ]
        assert row["accuracy"] == pytest.approx(accuracy)


def test_planted_weak_group_is_flagged_and_small_groups_never_are():
    rng = np.random.default_rng(5)
    n = 3000
    age = rng.choice(["20-29", "30-39", "3-9"], size=n, p=[0.45, 0.45, 0.10])
    tiny = np.zeros(n, dtype=object)
    tiny[:] = "none"
    tiny[:20] = "sunglasses"
    truth = rng.choice(["female", "male"], size=n)
    error_rate = np.where(age == "3-9", 0.35, 0.05)
    error_rate[:20] = 0.9  # a terrible but tiny group
    wrong = rng.random(n) < error_rate
    predicted = np.where(wrong, np.where(truth == "female", "male", "female"), truth)
    frame = pd.DataFrame({"truth": truth, "predicted": predicted, "age_band": age, "glasses": tiny})
    result = accuracy_by_group(frame, attributes=["age_band", "glasses"], intersections=False)
    flagged = result[result["flagged"]]
    assert list(zip(flagged["attribute"], flagged["group"], strict=True)) == [("age_band", "3-9")]
    small = result[(result["attribute"] == "glasses") & (result["group"] == "sunglasses")].iloc[0]
    assert small["too_few"] and not small["flagged"] and small["accuracy"] < 0.5


def test_gap_threshold_is_configurable():
    # a: 960/1000 right; b: 27/30 right. Overall 987/1030 = 0.958; b is 5.8 points below,
    # but its interval reaches above the overall, so only the gap rule can flag it.
    predicted = ["female"] * 960 + ["male"] * 40 + ["female"] * 27 + ["male"] * 3
    frame = pd.DataFrame(
        {"truth": ["female"] * 1030, "predicted": predicted, "g": ["a"] * 1000 + ["b"] * 30}
    )
    strict = accuracy_by_group(frame, attributes=["g"], gap=0.05).set_index("group")
    loose = accuracy_by_group(frame, attributes=["g"], gap=0.07).set_index("group")
    assert strict.loc["b", "ci_high"] > strict.loc["all", "accuracy"]
    assert strict.loc["b", "gap"] == pytest.approx(987 / 1030 - 0.9)
    assert strict.loc["b", "flagged"] and not loose.loc["b", "flagged"]
    assert not strict.loc["a", "flagged"]


def test_bad_arguments_are_refused_with_the_reason():
    frame = _random_frame(0, n=50)
    with pytest.raises(ValueError, match="columns missing"):
        accuracy_by_group(frame, attributes=["no_such"])
    with pytest.raises(ValueError, match="min_n"):
        accuracy_by_group(frame, attributes=["race"], min_n=0)


def test_confusion_matrix_and_precision_recall_match_pandas():
    frame = _random_frame(9)
    classes = ["male", "female"]
    cm = confusion_matrix(frame["truth"], frame["predicted"], classes)
    assert (
        cm.loc["female", "female"]
        == ((frame.truth == "female") & (frame.predicted == "female")).sum()
    )
    assert (
        cm.loc["female", "male"] == ((frame.truth == "female") & (frame.predicted == "male")).sum()
    )
    assert cm.to_numpy().sum() == len(frame)
    pr = precision_recall(frame["truth"], frame["predicted"], classes).set_index("class")
    female = frame.predicted == "female"
    assert pr.loc["female", "precision"] == pytest.approx((frame.truth[female] == "female").mean())
    assert pr.loc["female", "recall"] == pytest.approx(
        (frame.predicted[frame.truth == "female"] == "female").mean()
    )
    assert pr.loc["male", "support"] == (frame.truth == "male").sum()


def test_calibration_bins_match_a_pandas_cut():
    rng = np.random.default_rng(11)
    p = rng.random(5000)
    y = rng.random(5000) < p
    table = calibration_bins(y, p, bins=10)
    bins = np.minimum((p * 10).astype(int), 9)
    expected = (
        pd.DataFrame({"b": bins, "y": y, "p": p})
        .groupby("b")
        .agg(n=("y", "size"), obs=("y", "mean"), mp=("p", "mean"))
    )
    np.testing.assert_array_equal(table["n"], expected["n"])
    np.testing.assert_allclose(table["observed"], expected["obs"])
    np.testing.assert_allclose(table["mean_predicted"], expected["mp"])
    assert expected_calibration_error(table) < 0.05  # well calibrated by construction
    assert calibration_bins([True], [1.0], bins=4)["n"].tolist() == [0, 0, 0, 1]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        calibration_bins([True], [1.5])


@settings(max_examples=200, deadline=None)
@given(nobs=st.integers(1, 5000), data=st.data())
def test_wilson_interval_holds_the_estimate_inside_zero_one(nobs, data):
    count = data.draw(st.integers(0, nobs))
    low, high = wilson_interval(count, nobs)
    assert 0 <= low <= count / nobs <= high <= 1
