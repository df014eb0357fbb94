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
    wilson_bounds,
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


def test_p_values_equal_scipy_fisher_and_statsmodels_multipletests():
    from scipy.stats import fisher_exact
    from statsmodels.stats.multitest import multipletests

    frame = _random_frame(4, n=1500)
    frame.loc[frame["race"] == "black", "predicted"] = "male"  # a group clearly worse
    for correction, method in (("holm", "holm"), ("bh", "fdr_bh")):
        result = accuracy_by_group(frame, attributes=["race", "glasses"], correction=correction)
        total, right = result.loc[0, "n"], result.loc[0, "correct"]
        tested = result[result["p_value"].notna()]
        assert len(tested) == ((result["attribute"] != "overall") & ~result["too_few"]).sum()
        for row in tested.itertuples():
            table = [[row.correct, row.n - row.correct], [right - row.correct, 0]]
            table[1][1] = (total - row.n) - table[1][0]
            assert row.p_value == pytest.approx(fisher_exact(table, alternative="less")[1])
        reference = multipletests(tested["p_value"], method=method)[1]
        np.testing.assert_allclose(tested["p_adjusted"], reference)
        assert result[result["too_few"]]["p_value"].isna().all()


def test_practical_gap_narrows_the_flags_and_never_widens_them():
    # a: 9,600/10,000 right; b: 460/500 right: 4 points below the rest, clearly significant.
    predicted = ["female"] * 9600 + ["male"] * 400 + ["female"] * 460 + ["male"] * 40
    frame = pd.DataFrame(
        {"truth": ["female"] * 10500, "predicted": predicted, "g": ["a"] * 10000 + ["b"] * 500}
    )
    with_gap = accuracy_by_group(frame, attributes=["g"], gap=0.05).set_index("group")
    test_only = accuracy_by_group(frame, attributes=["g"], gap=0.0).set_index("group")
    assert with_gap.loc["b", "gap"] == pytest.approx(0.96 - 0.92)
    assert with_gap.loc["b", "p_adjusted"] < 0.001
    assert test_only.loc["b", "flagged"] and not with_gap.loc["b", "flagged"]
    # 28 of 30 wrong is far below the rest, yet a group under min_n is never tested.
    small = frame.copy()
    small.loc[:29, "g"] = "c"
    small.loc[:27, "predicted"] = "male"
    row = accuracy_by_group(small, attributes=["g"], min_n=31).set_index("group").loc["c"]
    assert row["too_few"] and np.isnan(row["p_value"]) and not row["flagged"]


def test_bad_arguments_are_refused_with_the_reason():
    frame = _random_frame(0, n=50)
    with pytest.raises(ValueError, match="columns missing"):
        accuracy_by_group(frame, attributes=["no_such"])
    with pytest.raises(ValueError, match="min_n"):
        accuracy_by_group(frame, attributes=["race"], min_n=0)
    with pytest.raises(ValueError, match="choose one of: holm, bh"):
        accuracy_by_group(frame, attributes=["race"], correction="bonferroni")
    with pytest.raises(ValueError, match="alpha"):
        accuracy_by_group(frame, attributes=["race"], alpha=1.5)


def test_wilson_bounds_of_one_proportion_are_floats_or_none_when_empty():
    assert wilson_bounds(0, 0) == (None, None)
    low, high = wilson_bounds(7, 13)
    assert (low, high) == pytest.approx(proportion_confint(7, 13, method="wilson"), abs=1e-7)


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


def test_evaluation_needs_neither_scipy_nor_statsmodels_at_runtime():
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, modeling.evaluation, modeling.ml.metrics; "
        "sys.exit(bool({'scipy', 'statsmodels'} & set(sys.modules)))"
    )
    root = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=root, timeout=120).returncode == 0
