"""Validation rounds: eligibility, the stratified seeded sample, progress and results."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from statsmodels.stats.proportion import proportion_confint

from annotate.models import Consensus, ConsensusStatus, FaceStatus, KnownLabel
from config.celery import Queue, app
from modeling import evaluation
from modeling.models import ValidationItem, ValidationRound
from modeling.sampling import stratified_sample
from modeling.selectors.validation import validation_round_progress
from modeling.services import validation
from modeling.services.triage import triage_record
from modeling.services.validation import (
    NO_PREDICTIONS,
    TOO_FEW_ELIGIBLE,
    ValidationError,
    cv_by_subgroup,
    cv_overall,
    validation_results_compute,
    validation_round_create,
    validation_rounds_after_consensus,
)
from modeling.tasks import validation_results
from tests.factories import (
    faces_code,
    make_plain_faces,
    make_study,
    make_user,
    quick_users,
    votes_cast,
)
from tests.modeling.helpers import trained_version
from tests.modeling.validation_factories import code_faces, make_version, plant

pytestmark = pytest.mark.django_db


def _uncoded_scenario(n=400, **kwargs):
    study = make_study()
    faces = make_plain_faces(study, n)
    version = make_version(study, active=True)
    truth = plant(faces, version, coded=False, **kwargs)
    return study, version, faces, truth


def test_round_samples_only_faces_the_version_predicted_and_never_trained_on(coding_flow):
    study, version, faces, truth = _uncoded_scenario(200)
    trained = [f.pk for f in faces[:50]]
    version.training_run.dataset = {"face_ids": trained}
    version.training_run.save()
    imported = faces[50]
    KnownLabel.objects.create(face=imported, source="set", usage="train", gender="female")
    faces[51].coding_status = FaceStatus.EXCLUDED
    faces[51].save()
    other = make_version(study)
    triage_record(face=faces[52], version=other, decision="not_face", decided_by=make_user())
    round = validation_round_create(version=version, size=140, seed=5, min_per_group=10)
    sampled = set(round.items.values_list("face_id", flat=True))
    assert len(sampled) == 140
    assert not sampled & {*trained, imported.pk, faces[51].pk, faces[52].pk}
    assert round.stratification["excluded"] == {
        "trained on": 50,
        "imported training label": 1,
        "not a face": 2,
        "already in a round of this version": 0,
    }
    assert coding_flow.prioritized == [(sorted(sampled), 100)]
    assert round.seed == 5 and round.status == ValidationRound.Status.OPEN


def test_sample_is_stratified_by_predicted_class_and_query_and_seeded(coding_flow):
    study, version, faces, truth = _uncoded_scenario(400)
    round = validation_round_create(version=version, size=100, seed=11, min_per_group=0)
    items = pd.DataFrame(round.items.values("face_id", "stratum"))
    predicted = items["face_id"].map(lambda i: truth[i]["predicted"])
    population = pd.Series([t["predicted"] for t in truth.values()])
    assert abs((predicted == "female").mean() - (population == "female").mean()) < 0.05
    assert items["stratum"].nunique() == 8  # 2 classes × 4 queries
    first = sorted(items["face_id"])
    ValidationRound.objects.filter(pk=round.pk).delete()
    again = validation_round_create(version=version, size=100, seed=11, min_per_group=0)
    assert sorted(again.items.values_list("face_id", flat=True)) == first


def test_minimum_per_subgroup_is_met_where_the_attribute_is_known():
    frame = pd.DataFrame(
        {
            "face_id": range(1000),
            "predicted": ["female", "male"] * 500,
            "query": ["q"] * 1000,
            "glasses": ["glasses"] * 25 + ["none"] * 975,
            "race": [""] * 1000,
        }
    )
    sample = stratified_sample(
        frame, size=100, seed=1, attributes=["glasses", "race"], min_per_group=20
    )
    assert (sample["glasses"] == "glasses").sum() >= 20
    assert len(sample) == 100 and sample["face_id"].is_unique
    same = stratified_sample(
        frame, size=100, seed=1, attributes=["glasses", "race"], min_per_group=20
    )
    assert sample["face_id"].tolist() == same["face_id"].tolist()
    other = stratified_sample(
        frame, size=100, seed=2, attributes=["glasses", "race"], min_per_group=20
    )
    assert sample["face_id"].tolist() != other["face_id"].tolist()


def test_too_few_eligible_faces_creates_nothing_and_says_why(coding_flow):
    study, version, faces, truth = _uncoded_scenario(30)
    with pytest.raises(ValidationError) as exc:
        validation_round_create(version=version, size=31, seed=1)
    assert str(exc.value) == TOO_FEW_ELIGIBLE.format(eligible=30, version=version, size=31)
    assert not ValidationRound.objects.exists() and not ValidationItem.objects.exists()
    assert coding_flow.prioritized == []


def test_a_version_without_predictions_is_refused(coding_flow):
    study = make_study()
    version = make_version(study)
    with pytest.raises(ValidationError) as exc:
        validation_round_create(version=version, size=10)
    assert str(exc.value) == NO_PREDICTIONS.format(version=version)
    assert not ValidationRound.objects.exists()


@pytest.mark.parametrize("size", [0, -3])
def test_a_round_size_below_one_is_refused(coding_flow, size):
    study, version, faces, truth = _uncoded_scenario(20)
    with pytest.raises(ValidationError, match="at least 1"):
        validation_round_create(version=version, size=size)


def test_a_failure_handing_faces_to_the_coders_creates_nothing(monkeypatch):
    study, version, faces, truth = _uncoded_scenario(20)

    def broken(**kwargs):
        raise RuntimeError("the work queue refused the faces")

    monkeypatch.setattr(validation, "faces_prioritize", broken)
    with pytest.raises(RuntimeError):
        validation_round_create(version=version, size=10)
    assert not ValidationRound.objects.exists()


def test_progress_counts_final_consensus_and_results_flag_the_planted_subgroup(coding_flow):
    study, version, faces, truth = _uncoded_scenario(900, seed=3)
    round = validation_round_create(version=version, size=600, seed=2, min_per_group=30)
    ids = list(round.items.values_list("face_id", flat=True))
    assert validation_round_progress(round=round).coded == 0
    code_faces(ids[:300], truth)
    progress = validation_round_progress(round=round)
    assert (progress.coded, progress.sampled, progress.complete) == (300, 600, False)
    partial = validation_results_compute(round_id=round.pk)
    assert partial.results["partial"] and partial.status == ValidationRound.Status.OPEN
    code_faces(ids[300:], truth)
    round = validation_results_compute(round_id=round.pk)
    assert round.status == ValidationRound.Status.COMPLETE and not round.results["partial"]
    rows = pd.DataFrame(round.results["by_subgroup"])
    flagged = rows[rows["flagged"]]
    single = flagged[~flagged["attribute"].str.contains("×")]
    assert list(zip(single["attribute"], single["group"], strict=True)) == [("age_band", "3-9")]
    assert all("3-9" in g for g in flagged["group"])  # intersections only through the weak group
    correct = sum(truth[i]["truth"] == truth[i]["predicted"] for i in ids)
    assert round.results["overall"]["n"] == 600
    assert round.results["overall"]["accuracy"] == pytest.approx(correct / 600)
    matrix = round.results["confusion"]["matrix"]
    assert sum(map(sum, matrix)) == 600
    female_as_male = sum(
        truth[i]["truth"] == "female" and truth[i]["predicted"] == "male" for i in ids
    )
    classes = round.results["confusion"]["classes"]
    assert matrix[classes.index("female")][classes.index("male")] == female_as_male


def test_not_a_face_and_cant_tell_consensus_are_coded_but_not_scored(coding_flow):
    study, version, faces, truth = _uncoded_scenario(60)
    round = validation_round_create(version=version, size=40, seed=1, min_per_group=0)
    ids = list(round.items.values_list("face_id", flat=True))
    code_faces(ids[2:], truth)
    faces_code({ids[0]: {"gender": "not_face"}, ids[1]: {"gender": "cant_tell"}})
    assert Consensus.objects.get(face_id=ids[0]).status == ConsensusStatus.NOT_FACE
    assert Consensus.objects.get(face_id=ids[1]).label == "cant_tell"
    round = validation_results_compute(round_id=round.pk)
    assert round.status == ValidationRound.Status.COMPLETE
    assert round.results["n_used"] == 38 and round.results["n_unusable"] == 2


def test_cv_rows_are_read_as_training_stores_them():
    version = trained_version("cvrows", faces=100)
    rows = cv_by_subgroup(version)
    assert rows and rows == version.metrics["cv"]["by_subgroup"]
    assert all(set(row) == set(evaluation.RESULT_COLUMNS) for row in rows)  # JSONB reorders
    for row in rows:
        assert row["accuracy"] == pytest.approx(row["correct"] / row["n"])
        low, high = proportion_confint(row["correct"], row["n"], method="wilson")
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), abs=1e-7)
    assert cv_overall(version) == version.metrics["cv"]["accuracy"]
    # A version trained before training stored these rows has none (not a guess at them).
    older = make_version(version.study, metrics={"cv": {"by_subgroup": {"race": []}}})
    assert cv_by_subgroup(older) == [] and cv_overall(make_version(version.study)) is None


def test_a_round_completing_enqueues_its_results(coding_flow, monkeypatch):
    study, version, faces, truth = _uncoded_scenario(30)
    round = validation_round_create(version=version, size=10, seed=1, min_per_group=0)
    ids = list(round.items.values_list("face_id", flat=True))
    faces_by_id = {face.pk: face for face in faces}
    requested = []
    monkeypatch.setattr(
        "modeling.services.validation.validation_results_request",
        lambda *, round: requested.append(round.pk),
    )
    code_faces(ids[:9], truth)
    assert validation_rounds_after_consensus(face=faces_by_id[ids[8]]) == [] and requested == []
    code_faces(ids[9:], truth)
    assert validation_rounds_after_consensus(face=faces_by_id[ids[9]]) == [round.pk] == requested


def test_results_task_runs_on_the_default_queue():
    route = app.amqp.router.route({}, validation_results.name)
    assert route["queue"].name == Queue.DEFAULT.value


def test_command_opens_a_round_and_prints_its_id_then_computes(coding_flow):
    study, version, faces, truth = _uncoded_scenario(80)
    out = io.StringIO()
    call_command(
        "validation_round", "--study", study.slug, "--size", "50", "--seed", "3", stdout=out
    )
    round = ValidationRound.objects.get()
    assert out.getvalue().strip() == str(round.pk)
    code_faces(round.items.values_list("face_id", flat=True), truth)
    out = io.StringIO()
    call_command("validation_round", "--study", study.slug, "--compute", str(round.pk), stdout=out)
    assert out.getvalue().startswith(f"{round.pk}\tcomplete")
    with pytest.raises(CommandError, match="eligible"):
        call_command("validation_round", "--study", study.slug, "--size", "500")
    out = io.StringIO()
    call_command(
        "validation_round", "--study", study.slug, "--version", "1", "--size", "10", stdout=out
    )
    assert ValidationRound.objects.get(pk=int(out.getvalue())).version == version
    with pytest.raises(CommandError, match="no version 9"):
        call_command("validation_round", "--study", study.slug, "--version", "9")


def test_results_of_a_round_with_nothing_coded_yet_are_empty_not_an_error(coding_flow):
    study, version, faces, truth = _uncoded_scenario(40)
    round = validation_round_create(version=version, size=20, seed=1, min_per_group=0)
    round = validation_results_compute(round_id=round.pk)
    assert round.results["overall"]["n"] == 0 and round.results["overall"]["accuracy"] is None
    assert round.results["by_subgroup"] == [] and round.results["partial"]
    assert round.status == ValidationRound.Status.OPEN


def test_a_split_vote_waiting_for_more_coders_is_not_coded_yet(coding_flow):
    study, version, faces, truth = _uncoded_scenario(30)
    round = validation_round_create(version=version, size=10, seed=1, min_per_group=0)
    ids = list(round.items.values_list("face_id", flat=True))
    code_faces(ids[1:], truth)
    quick_users(study, 1)  # a coder who has not voted on the split face yet
    split = votes_cast(ids[0], [{"gender": "female"}, {"gender": "male"}, {"gender": "cant_tell"}])
    assert split.status == ConsensusStatus.ESCALATED
    assert validation_round_progress(round=round).coded == 9
    round = validation_results_compute(round_id=round.pk)
    assert (round.results["n_coded"], round.results["n_used"]) == (9, 9)
    assert round.status == ValidationRound.Status.OPEN and round.results["partial"]
