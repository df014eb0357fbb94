"""Dawid–Skene for real: the study's aggregation method decides the labels training, validation
and estimates use, and the EM says whether it converged or stopped at its cap.

The crowd: two reliable coders (R1, R2) who always give the true label and two careless ones
(C1, C2) who always say "male". Every face gets R1 and C1; the first half adds R2, the second
half C2. On the second half's women the careless pair outvote R1, so majority vote says "male";
the first half teaches the EM that C1 says "male" to everyone, so Dawid–Skene says "female".
"""

from __future__ import annotations

import logging
import math

import pandas as pd
import pytest
from django.urls import reverse

from annotate.aggregation import (
    AT_CAP,
    BAD_MAX_ITER,
    BAD_TOLERANCE,
    CONVERGED,
    MAX_ITER,
    RESULT_COLUMNS,
    TOLERANCE,
    dawid_skene,
    dawid_skene_fit,
    majority_vote,
)
from annotate.assignment import assignment_next
from annotate.consensus import face_adjudicate
from annotate.models import AggregationMethod, FaceStatus
from annotate.roles import Role
from annotate.selectors.labels import (
    SOURCE_ADJUDICATION,
    SOURCE_CONSENSUS,
    SOURCE_DAWID_SKENE,
    UNKNOWN_METHOD,
    face_labels,
)
from annotate.services.coding import VoteRequest, vote_submit
from modeling.models import Prediction, ValidationRound
from modeling.selectors.estimates import estimates_faces_frame, estimates_validation
from modeling.selectors.training import training_set_select
from modeling.selectors.validation import validation_round_frame
from modeling.services.validation import validation_results_compute, validation_round_create
from tests.annotate.coding_helpers import answers_for
from tests.factories import make_plain_faces, make_study, make_user, quick_users
from tests.modeling.validation_factories import make_version

N_FACES = 20


def _truth(position: int) -> str:
    return "female" if position % 2 == 0 else "male"


def _crowd_votes(n: int = N_FACES) -> tuple[pd.DataFrame, dict[int, str]]:
    """The module docstring's crowd as a plain vote table (no database)."""
    rows, truth = [], {}
    for item in range(n):
        truth[item] = _truth(item)
        for coder in ("R1", "C1", "R2" if item < n // 2 else "C2"):
            rows.append((item, coder, "male" if coder.startswith("C") else truth[item]))
    return pd.DataFrame(rows, columns=["item", "coder", "label"]), truth


# --- the pure EM ------------------------------------------------------------------------


def test_dawid_skene_outvotes_careless_coders_and_reports_convergence():
    votes, truth = _crowd_votes()
    majority, labels = majority_vote(votes), dawid_skene(votes)
    assert list(labels.columns) == RESULT_COLUMNS  # the METHODS.md contract still holds
    assert labels["label"].to_dict() == truth
    assert (majority["label"] != labels["label"]).sum() == 5  # the second half's women
    convergence = labels.attrs["convergence"]
    assert convergence["converged"] is True
    assert 1 < convergence["iterations"] < convergence["max_iter"] == MAX_ITER
    assert convergence["change"] < convergence["tolerance"] == TOLERANCE
    assert convergence["message"] == CONVERGED.format(iterations=convergence["iterations"])


def test_dawid_skene_reports_stopping_at_its_cap(caplog):
    votes, _ = _crowd_votes()
    with caplog.at_level(logging.WARNING, logger="annotate.aggregation"):
        fit = dawid_skene_fit(votes, max_iter=2)
    convergence = fit.convergence
    assert not convergence.converged and convergence.iterations == 2
    assert convergence.change > convergence.tolerance
    assert convergence.message.startswith("stopped at the cap of 2 iterations; change ")
    assert convergence.message.endswith("> tolerance 1e-06")
    assert convergence.message == AT_CAP.format(
        max_iter=2, change=convergence.change, tolerance=1e-6
    )
    assert convergence.message in caplog.text


def test_estimated_confusion_tells_careless_coders_from_reliable_ones():
    votes, _ = _crowd_votes()
    fit = dawid_skene_fit(votes)
    accuracy = fit.coder_accuracy()
    assert accuracy["R1"] > 0.95 and accuracy["R2"] > 0.95
    assert accuracy["C1"] < 0.6 and accuracy["C2"] < 0.6
    careless = fit.coder_confusion("C1")
    assert careless.loc["female", "male"] > 0.95  # says "male" to women
    assert fit.coder_confusion("R1").loc["female", "female"] > 0.95
    assert careless.sum(axis=1).round(9).eq(1).all()
    assert fit.coder_votes.to_dict() == {"C1": 20, "C2": 10, "R1": 20, "R2": 10}


@pytest.mark.parametrize(
    ("em_settings", "message"),
    [
        ({"max_iter": 0}, BAD_MAX_ITER.format(value=0)),
        ({"tol": 0.0}, BAD_TOLERANCE.format(value=0.0)),
    ],
)
def test_impossible_em_settings_are_refused(em_settings, message):
    votes, _ = _crowd_votes()
    with pytest.raises(ValueError) as error:
        dawid_skene_fit(votes, **em_settings)
    assert str(error.value) == message


# --- the study's labels downstream --------------------------------------------------------


def _code(study, coder, answer, *, limit: int | None = None) -> int:
    """The coder takes faces through the assignment service and votes answer(face_id)."""
    cast = 0
    while limit is None or cast < limit:
        assignment = assignment_next(study=study, coder=coder)
        if assignment is None:
            break
        vote_submit(
            study=study,
            coder=coder,
            request=VoteRequest(assignment.pk, answers_for(study, answer(assignment.face_id)), 1.0),
        )
        cast += 1
    return cast


@pytest.fixture
def crowd(db):
    """The module docstring's crowd, voting through the coding services on real faces."""
    study = make_study(attributes_asked=[])
    faces = make_plain_faces(study, N_FACES)
    truth = {face.pk: _truth(i) for i, face in enumerate(faces)}
    r1, r2, c1, c2 = quick_users(study, 4)
    said_by_reliable, said_by_careless = truth.get, lambda face_id: "male"
    # The queue hands out the fullest faces first, then by id: R2 gets the first half.
    assert _code(study, r1, said_by_reliable) == N_FACES
    assert _code(study, c1, said_by_careless) == N_FACES
    assert _code(study, r2, said_by_reliable, limit=N_FACES // 2) == N_FACES // 2
    assert _code(study, c2, said_by_careless) == N_FACES // 2
    assert not study.faces.exclude(coding_status=FaceStatus.COMPLETE).exists()
    majority = {
        face.pk: truth[face.pk] if i < N_FACES // 2 else "male" for i, face in enumerate(faces)
    }
    return study, truth, majority, (r1, r2, c1, c2)


def _aggregate_by(study, method: str) -> None:
    study.aggregation = method
    study.save(update_fields=["aggregation"])


def test_each_method_labels_the_faces_it_should(crowd):
    study, truth, majority, _ = crowd
    by_majority = face_labels(study=study)
    assert by_majority.frame["label"].to_dict() == majority
    assert set(by_majority.frame["source"]) == {SOURCE_CONSENSUS}
    assert by_majority.provenance() == {"method": "majority"}
    assert sum(majority[f] != truth[f] for f in truth) == 5

    _aggregate_by(study, AggregationMethod.DAWID_SKENE)
    by_ds = face_labels(study=study)
    assert by_ds.frame["label"].to_dict() == truth
    assert set(by_ds.frame["source"]) == {SOURCE_DAWID_SKENE}
    assert (by_ds.frame["confidence"] > 0.5).all()
    assert by_ds.provenance()["dawid_skene"]["converged"] is True


def test_dawid_skene_is_fitted_on_all_the_studys_votes_whatever_faces_are_asked_for(crowd):
    study, truth, majority, _ = crowd
    _aggregate_by(study, AggregationMethod.DAWID_SKENE)
    disputed = [f for f in truth if truth[f] != majority[f]]
    one = face_labels(study=study, face_ids=disputed[:1]).frame
    # On its own three votes the face is "male"; the study's other votes make it "female".
    assert one["label"].to_dict() == {disputed[0]: "female"}


def test_training_validation_and_estimates_use_the_studys_method(crowd):
    study, truth, majority, _ = crowd
    training = training_set_select(study=study)
    assert {e.face_id: e.label for e in training.examples} == majority
    assert {e.source for e in training.examples} == {SOURCE_CONSENSUS}
    assert training.aggregation == {"method": "majority"}

    _aggregate_by(study, AggregationMethod.DAWID_SKENE)
    training = training_set_select(study=study)
    assert {e.face_id: e.label for e in training.examples} == truth
    assert {e.source for e in training.examples} == {SOURCE_DAWID_SKENE}
    assert training.aggregation["method"] == "dawid_skene"
    assert training.aggregation["dawid_skene"]["converged"] is True

    # A version that predicts every face right, validated on all of them.
    version = make_version(study, active=True)
    Prediction.objects.bulk_create(
        Prediction(
            face_id=f, version=version, label=label, probability=0.9 if label == "female" else 0.1
        )
        for f, label in truth.items()
    )
    round = validation_round_create(version=version, size=N_FACES, seed=1, min_per_group=0)
    expected = {AggregationMethod.MAJORITY: majority, AggregationMethod.DAWID_SKENE: truth}
    accuracy = {AggregationMethod.MAJORITY: 0.75, AggregationMethod.DAWID_SKENE: 1.0}
    for method, labels in expected.items():
        _aggregate_by(study, method)
        frame = validation_round_frame(round=ValidationRound.objects.get(pk=round.pk))
        assert frame.set_index("face_id")["truth"].to_dict() == labels
        results = validation_results_compute(round_id=round.pk).results
        assert results["overall"]["accuracy"] == pytest.approx(accuracy[method])
        faces = estimates_faces_frame(version=version).set_index("face_id")
        assert faces["consensus"].to_dict() == labels
        rates = estimates_validation(version=version).rates
        # Majority calls five women men, so the model's right answers count as false female.
        assert (rates.fp, rates.tp, rates.tn) == (
            (5, 5, 10) if method == AggregationMethod.MAJORITY else (0, 10, 10)
        )


def test_an_adjudication_overrides_dawid_skene(crowd):
    study, _, _, (r1, r2, c1, c2) = crowd
    _aggregate_by(study, AggregationMethod.DAWID_SKENE)
    (face,) = make_plain_faces(study, 1)
    for coder, said in ((r1, "female"), (c1, "male"), (c2, "cant_tell"), (r2, "not_face")):
        assert _code(study, coder, {face.pk: said}.get, limit=1) == 1
    face.refresh_from_db()
    assert face.coding_status == FaceStatus.ADJUDICATION
    estimated = face_labels(study=study).fit.labels.loc[face.pk, "label"]
    decided = "male" if estimated != "male" else "female"
    face_adjudicate(face=face, researcher=make_user(Role.RESEARCHER), label=decided)
    row = face_labels(study=study, face_ids=[face.pk]).frame.loc[face.pk]
    assert (row["label"], row["source"]) == (decided, SOURCE_ADJUDICATION)
    assert math.isnan(row["confidence"])
    training = {e.face_id: (e.label, e.source) for e in training_set_select(study=study).examples}
    assert training[face.pk] == (decided, SOURCE_ADJUDICATION)


def test_an_unknown_aggregation_method_is_refused_and_nothing_changes(crowd):
    study, _, majority, _ = crowd
    study.aggregation = "plurality"
    with pytest.raises(ValueError) as error:
        face_labels(study=study)
    assert str(error.value) == UNKNOWN_METHOD.format(
        study=study.slug, method="plurality", choices="majority, dawid_skene"
    )
    study.refresh_from_db()
    assert face_labels(study=study).frame["label"].to_dict() == majority


def test_agreement_page_shows_estimated_confusion_and_convergence(client, crowd):
    study, _, _, (r1, *_) = crowd
    client.force_login(make_user(Role.RESEARCHER, study=study))
    url = reverse("annotate:agreement", args=[study.slug])
    html = client.get(url).content.decode()
    assert 'data-testid="dawid-skene"' not in html  # majority: no EM to show

    _aggregate_by(study, AggregationMethod.DAWID_SKENE)
    html = client.get(f"{url}?coder={r1.pk}").content.decode()
    assert 'data-testid="dawid-skene"' in html
    iterations = face_labels(study=study).fit.convergence.iterations
    assert CONVERGED.format(iterations=iterations) in html
    assert f"{r1.username}: estimated accuracy" in html
    assert "Estimated true label" in html
    assert 'data-testid="labels-by-method">female: 10 · male: 10<' in html


def test_the_gallery_compares_with_the_studys_method(crowd):
    """A model that predicts every face right: against the majority it has five errors (the
    women the careless coders outvoted); against Dawid–Skene none, as validation says."""
    from modeling.selectors.gallery import GalleryFilters, gallery_page

    study, truth, majority, _ = crowd
    version = make_version(study, active=True)
    Prediction.objects.bulk_create(
        Prediction(face_id=f, version=version, label=label, probability=0.9)
        for f, label in truth.items()
    )
    errors = GalleryFilters(show="errors")
    women_called_men = GalleryFilters(show="all", direction="male_to_female")
    page = gallery_page(version=version, filters=errors)
    disputed = {f for f in truth if truth[f] != majority[f]}
    assert {p.face_id for p in page.object_list} == disputed
    assert {p.direction_label for p in page.object_list} == {"Model said female, humans said male"}
    assert len(gallery_page(version=version, filters=women_called_men).object_list) == 5

    _aggregate_by(study, AggregationMethod.DAWID_SKENE)
    assert list(gallery_page(version=version, filters=errors).object_list) == []
    assert list(gallery_page(version=version, filters=women_called_men).object_list) == []
    everything = gallery_page(version=version, filters=GalleryFilters(show="all"))
    assert {p.direction_label for p in everything.object_list} == {""}


def test_the_consensus_export_shows_the_label_used_beside_the_coding_consensus(crowd):
    from modeling.exports import export_frame

    study, truth, majority, _ = crowd
    frame = export_frame(study=study, what="consensus").set_index("face_id")
    assert frame["label_used"].to_dict() == majority == frame["label"].to_dict()
    assert set(frame["label_source"]) == {SOURCE_CONSENSUS}

    _aggregate_by(study, AggregationMethod.DAWID_SKENE)
    frame = export_frame(study=study, what="consensus").set_index("face_id")
    assert frame["label"].to_dict() == majority  # the coders' consensus, as coded
    assert frame["label_used"].to_dict() == truth  # what training and validation use
    assert set(frame["label_source"]) == {SOURCE_DAWID_SKENE}
    assert (frame["label_confidence"] > 0.5).all()
