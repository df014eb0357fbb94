"""The cross-validation export: each training face's out-of-fold prediction, enough to
recompute the version's CV accuracy, overall and by subgroup, from the file alone."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotate.labels import POSITIVE_CLASS, SUBGROUP_ATTRIBUTES
from annotate.models import Face, KnownLabel
from annotate.roles import Role
from annotate.services.demo import demo_study_load
from modeling import exports
from modeling.evaluation import INTERSECTION_SEPARATOR
from modeling.exports import NO_CV_PREDICTIONS, NO_VERSION
from modeling.services.prediction import predictions_run_create, predictions_run_execute
from modeling.services.training import training_run_create, training_run_execute
from modeling.services.validation import cv_by_subgroup
from tests.factories import make_study, make_user
from tests.modeling.conftest import TINY
from tests.modeling.validation_factories import code_faces, make_version

pytestmark = pytest.mark.django_db

IDENTITY = ["source_file", "query", "job", "country", "race", "age_band", "glasses", "quality"]
UNKNOWN = ("", "unknown")


def _export(study, what: str, out, *extra: str) -> pd.DataFrame:
    call_command(
        "export", "--study", study.slug, "--what", what, "--out", str(out), *extra,
        stdout=io.StringIO(),
    )  # fmt: skip
    # Empty cells stay empty strings: an unknown attribute is a group of its own, not NaN.
    return pd.read_csv(out, keep_default_na=False)


def _coded_study():
    """The demo's imported labeled crops, plus half its search-result faces coded by the
    coders (consensus), so training faces come both with and without a source image."""
    study = demo_study_load(slug="cv-export", faces=100, seed=5).study
    scene_faces = list(
        Face.objects.filter(study=study, source_image__isnull=False)
        .order_by("pk")
        .values_list("pk", flat=True)
    )[::2]
    truth = {
        known.face_id: {
            "truth": known.gender,
            **{k: getattr(known, k) for k in ("race", "age_band", "glasses", "quality")},
        }
        for known in KnownLabel.objects.filter(
            face_id__in=scene_faces, usage=KnownLabel.Usage.TRUTH
        )
    }
    code_faces(scene_faces, truth)
    return study


def _recomputed(cv: pd.DataFrame, attribute: str, group: str) -> tuple[int, float]:
    """n and accuracy of one subgroup row, from the exported columns only."""
    mask = pd.Series(True, index=cv.index)
    if attribute != "overall":
        names = attribute.split(INTERSECTION_SEPARATOR)
        values = group.split(INTERSECTION_SEPARATOR)
        for name, value in zip(names, values, strict=True):
            cells = cv[name].astype(str)
            mask &= cells.isin(UNKNOWN) if value in UNKNOWN else cells == value
    part = cv[mask]
    return len(part), float((part["label"] == part["prediction"]).mean())


def test_cv_export_reproduces_the_versions_cv_accuracy_overall_and_by_subgroup(
    tmp_path, monkeypatch
):
    study = _coded_study()
    run = training_run_execute(
        run_id=training_run_create(study=study, config=TINY, enqueue=False).pk
    )
    assert run.status == "succeeded", run.error
    version = run.version

    cv = _export(study, "cv", tmp_path / "cv.csv")

    training_faces = run.dataset["face_ids"]
    assert sorted(cv["face_id"]) == sorted(training_faces)  # one row per training face
    assert cv.groupby("face_id")["fold"].nunique().max() == 1
    assert set(cv["fold"]) == set(range(TINY["folds"]))
    assert ((cv["prediction"] == POSITIVE_CLASS) == (cv["probability"] >= version.threshold)).all()
    assert set(cv["label_source"]) == {"imported", "consensus"}
    assert (cv["version"] == version.number).all()
    faces = Face.objects.select_related("source_image").in_bulk(training_faces)
    for row in cv.itertuples():
        face = faces[row.face_id]
        image = face.source_image
        assert row.source_file == (image.original_name if image else face.original_name)
        assert (row.query, row.job, row.country) == (
            (image.query, image.job, image.country) if image else ("", "", "")
        )

    accuracy = (cv["label"] == cv["prediction"]).mean()
    assert accuracy == pytest.approx(version.metrics["cv"]["accuracy"])
    stored = cv_by_subgroup(version)
    assert stored, "the version stores no CV accuracy by subgroup"
    for row in stored:
        n, group_accuracy = _recomputed(cv, row["attribute"], row["group"])
        assert row["n"] == n, row
        assert row["accuracy"] == pytest.approx(group_accuracy), row
    listed = {(row["attribute"], row["group"]) for row in stored}
    for attribute in SUBGROUP_ATTRIBUTES:
        for value in set(cv[attribute].astype(str)) - set(UNKNOWN):
            assert (attribute, value) in listed  # every known group is compared, none skipped
    assert set(cv["race"]) - set(UNKNOWN), "the training faces carry subgroup attributes"
    whole = exports.export_frame(study=study, what="cv")
    monkeypatch.setattr(exports, "IDENTITY_CHUNK", 7)  # large studies are read in chunks
    pd.testing.assert_frame_equal(exports.export_frame(study=study, what="cv"), whole)
    parquet = tmp_path / "cv.parquet"
    call_command(
        "export", "--study", study.slug, "--what", "cv", "--format", "parquet",
        "--out", str(parquet), stdout=io.StringIO(),
    )  # fmt: skip
    back = pd.read_parquet(parquet)
    assert list(back.columns) == list(cv.columns)
    assert back["probability"].tolist() == pytest.approx(cv["probability"].tolist())

    predict = predictions_run_execute(
        run_id=predictions_run_create(version=version, enqueue=False).pk
    )
    assert predict.status == "succeeded", predict.error
    predictions = _export(study, "predictions", tmp_path / "p.csv", "--version", "1")
    assert list(predictions.columns[:8]) == [
        "face_id", "version", "version_id", "probability", "label", "job", "country", "query",
    ]  # fmt: skip
    same = predictions.merge(cv, on="face_id", suffixes=("", "_cv"))
    assert len(same) == len(cv)
    for column in IDENTITY:
        assert same[column].tolist() == same[f"{column}_cv"].tolist(), column


def test_cv_export_without_cv_predictions_says_why_and_writes_nothing(tmp_path, client):
    study = make_study()
    out = tmp_path / "cv.csv"
    with pytest.raises(CommandError) as empty:
        _export(study, "cv", out)
    assert str(empty.value) == NO_VERSION.format(study=study.slug)

    make_version(study, number=1, active=True)  # a version trained before CV rows were kept
    make_version(study, number=2)
    with pytest.raises(CommandError) as active:
        _export(study, "cv", out)
    assert str(active.value) == NO_CV_PREDICTIONS.format(version=1, study=study.slug)
    study.model_versions.update(is_active=False)
    with pytest.raises(CommandError) as newest:
        _export(study, "cv", out)
    assert str(newest.value) == NO_CV_PREDICTIONS.format(version=2, study=study.slug)
    assert not out.exists()

    client.force_login(make_user(Role.RESEARCHER, study=study))
    page = client.get(reverse("modeling:exports", args=[study.slug])).content.decode()
    assert "?what=cv&amp;format=csv" in page
    response = client.get(reverse("modeling:export", args=[study.slug]), {"what": "cv"})
    assert response.status_code == 400
    assert response.content.decode() == NO_CV_PREDICTIONS.format(version=2, study=study.slug)
