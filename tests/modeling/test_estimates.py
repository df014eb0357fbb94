"""Raw and corrected shares and the bootstrap (the simulation that validates them:
tests/bench/test_coverage_sim.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modeling.estimates import (
    NOTE_CLIPPED,
    NOTE_NO_FACES,
    NOTE_NO_VALIDATION,
    NOTE_UNDEFINED,
    ErrorRates,
    faces_select,
    raw_bias,
    rogan_gladen,
    row_quantiles,
    share_estimates,
)


def test_rogan_gladen_inverts_misclassification_and_is_undefined_when_se_plus_sp_le_1():
    p, se, sp = 0.42, 0.88, 0.93
    q = se * p + (1 - sp) * (1 - p)
    assert rogan_gladen(q, se, sp) == pytest.approx(p)
    assert q - p == pytest.approx(raw_bias(p, se, sp))
    assert np.isnan(rogan_gladen(0.5, 0.5, 0.5))
    assert np.isnan(rogan_gladen(0.5, 0.3, 0.6))


def test_error_rates_from_labels_ignore_non_binary_truth():
    rates = ErrorRates.from_labels(
        ["female", "female", "male", "male", "cant_tell"],
        ["female", "male", "female", "male", "female"],
    )
    assert (rates.tp, rates.fn, rates.fp, rates.tn) == (1, 1, 1, 1)
    assert rates.sensitivity == 0.5 and not rates.defined


def _faces(rows):
    return pd.DataFrame(
        rows,
        columns=[
            "face_id",
            "image_id",
            "query",
            "rank",
            "predicted",
            "consensus",
            "duplicate_of",
            "phash",
            "job",
            "country",
        ],
    )


def test_raw_share_per_face_and_per_image_and_consensus_beside_it():
    faces = _faces(
        [
            (1, 10, "q1", 1, "female", "female", None, "", "nurse", "de"),
            (2, 10, "q1", 1, "male", "", None, "", "nurse", "de"),
            (3, 11, "q1", 2, "female", "male", None, "", "nurse", "de"),
            (4, 12, "q2", 1, "male", "", None, "", "pilot", "de"),
        ]
    )
    per_face = share_estimates(faces, by=["job"], rates=None, n_boot=200).set_index("job")
    assert per_face.loc["nurse", "raw_share"] == pytest.approx(2 / 3)
    assert per_face.loc["nurse", "images"] == 2 and per_face.loc["nurse", "faces"] == 3
    assert per_face.loc["nurse", "consensus_faces"] == 2
    assert per_face.loc["nurse", "consensus_share"] == pytest.approx(0.5)
    assert per_face.loc["nurse", "note"] == NOTE_NO_VALIDATION
    assert np.isnan(per_face.loc["nurse", "corrected_share"])
    per_image = share_estimates(faces, by=["job"], rates=None, per="image", n_boot=200).set_index(
        "job"
    )
    assert per_image.loc["nurse", "raw_share"] == pytest.approx((0.5 + 1.0) / 2)


def test_rank_cutoff_and_near_duplicates_once_per_query():
    faces = _faces(
        [
            (1, 10, "q1", 1, "female", "", None, "", "nurse", "de"),
            (2, 11, "q1", 2, "female", "", 1, "", "nurse", "de"),  # near-duplicate of 1
            (3, 12, "q1", 3, "female", "", None, "", "nurse", "de"),  # never flagged: counts
            (4, 13, "q2", 1, "female", "", 1, "", "nurse", "us"),  # duplicate, other query
            (5, 14, "q1", 9, "male", "", None, "", "nurse", "de"),
            (6, 15, "q1", None, "male", "", None, "", "nurse", "de"),
            (7, 16, "q1", 2, "male", "", 1, "", "nurse", "de"),  # same cluster as 1 and 2
        ]
    )
    assert sorted(faces_select(faces)["face_id"]) == [1, 3, 4, 5, 6]
    assert sorted(faces_select(faces, dedupe=False)["face_id"]) == [1, 2, 3, 4, 5, 6, 7]
    assert sorted(faces_select(faces, rank_cutoff=3)["face_id"]) == [1, 3, 4]
    # the cluster still counts once when its first face is cut off
    assert sorted(faces_select(faces[faces["face_id"] != 1])["face_id"]) == [2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="rank cut-off"):
        faces_select(faces, rank_cutoff=0)


def test_corrected_share_uses_validation_rates_and_flags_clipping_and_undefined():
    rng = np.random.default_rng(1)
    n = 2000
    predicted = np.where(rng.random(n) < 0.5, "female", "male")
    faces = pd.DataFrame(
        {
            "face_id": np.arange(n),
            "image_id": np.arange(n),
            "query": "q",
            "rank": 1,
            "predicted": predicted,
            "job": np.where(np.arange(n) < 1000, "a", "b"),
        }
    )
    faces.loc[faces.job == "b", "predicted"] = "male"  # q = 0 < 1 - Sp: corrected below 0
    rates = ErrorRates(tp=180, fn=20, fp=20, tn=180)
    table = share_estimates(faces, by=["job"], rates=rates, n_boot=500, seed=3).set_index("job")
    q = table.loc["a", "raw_share"]
    assert table.loc["a", "corrected_share"] == pytest.approx((q + 0.9 - 1) / 0.8)
    assert table.loc["a", "ci_low"] < table.loc["a", "corrected_share"] < table.loc["a", "ci_high"]
    assert table.loc["b", "clipped"] and table.loc["b", "corrected_share"] == 0.0
    assert table.loc["b", "note"] == NOTE_CLIPPED
    bad = share_estimates(faces, by=["job"], rates=ErrorRates(50, 50, 60, 40), n_boot=100)
    assert (bad["note"] == NOTE_UNDEFINED).all()
    assert bad["corrected_share"].isna().all() and bad["ci_low"].isna().all()
    assert bad["raw_share"].notna().all()


def test_a_group_with_images_but_no_faces_gets_a_row_saying_so():
    faces = _faces([(1, 10, "q1", 1, "female", "", None, "", "nurse", "de")])
    images = pd.DataFrame(
        {
            "image_id": [10, 11],
            "rank": [1, 1],
            "job": ["nurse", "pilot"],
            "country": ["de", "de"],
            "query": ["q1", "q2"],
        }
    )
    table = share_estimates(
        faces, images=images, by=["job"], rates=ErrorRates(90, 10, 10, 90), n_boot=100
    )
    pilot = table.set_index("job").loc["pilot"]
    assert pilot["faces"] == 0 and pilot["images"] == 1
    assert np.isnan(pilot["raw_share"]) and pilot["note"] == NOTE_NO_FACES


def test_per_subgroup_rates_are_used_only_with_enough_validation_faces():
    faces = _faces(
        [
            (
                i,
                i,
                "q",
                1,
                "female" if i % 2 else "male",
                "",
                None,
                "",
                "nurse",
                "de" if i < 50 else "us",
            )
            for i in range(100)
        ]
    )
    validation = pd.DataFrame(
        {
            "truth": ["female"] * 40 + ["male"] * 40 + ["female"] * 5 + ["male"] * 5,
            "predicted": ["female"] * 36 + ["male"] * 4 + ["male"] * 40 + ["female"] * 10,
            "country": ["de"] * 80 + ["us"] * 10,
        }
    )
    overall = ErrorRates.from_labels(validation.truth, validation.predicted)
    table = share_estimates(
        faces,
        by=["country"],
        rates=overall,
        validation=validation,
        per_subgroup_rates=True,
        n_boot=100,
    ).set_index("country")
    assert table.loc["de", "rates_from"] == "group"
    assert table.loc["de", "sensitivity"] == pytest.approx(0.9)
    assert table.loc["us", "rates_from"] == "overall"
    assert table.loc["us", "sensitivity"] == pytest.approx(overall.sensitivity)


def test_bad_options_are_refused():
    faces = _faces([(1, 10, "q1", 1, "female", "", None, "", "nurse", "de")])
    with pytest.raises(ValueError, match="per must be one of"):
        share_estimates(faces, by=["job"], rates=None, per="query")
    with pytest.raises(ValueError, match="unknown grouping"):
        share_estimates(faces, by=["planet"], rates=None)


@settings(max_examples=200, deadline=None)
@given(
    p=st.floats(0, 1),
    se=st.floats(0.51, 1),
    sp=st.floats(0.51, 1),
)
def test_rogan_gladen_recovers_any_share_from_its_expected_raw_share(p, se, sp):
    q = se * p + (1 - sp) * (1 - p)
    assert rogan_gladen(q, se, sp) == pytest.approx(p, abs=1e-9)


def test_row_quantiles_equal_numpys_nanquantile_with_nan_and_empty_rows():
    rng = np.random.default_rng(3)
    draws = rng.random((50, 200))
    draws[rng.random(draws.shape) < 0.1] = np.nan
    draws[7] = np.nan  # no defined draw in this row
    draws[8, 1:] = np.nan  # one
    draws[9] = 0.25  # all equal
    qs = (0.025, 0.5, 0.975)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = [np.nanquantile(draws, q, axis=1) for q in qs]
    for got, want in zip(row_quantiles(draws, qs), expected, strict=True):
        np.testing.assert_array_equal(got, want)
