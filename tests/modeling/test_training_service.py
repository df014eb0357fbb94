"""Training runs in the database: data selection, snapshot, failures recorded, versions."""

from __future__ import annotations

import pytest
import torch
from django.core.exceptions import PermissionDenied

from annotate.consensus import face_adjudicate
from annotate.labels import SUBGROUP_ATTRIBUTES
from annotate.models import (
    ConsensusStatus,
    JobStatus,
    KnownLabel,
)
from annotate.roles import Role
from annotate.selectors.attributes import face_attributes_frame
from annotate.services.demo import demo_study_load
from modeling.evaluation import RESULT_COLUMNS
from modeling.ml.checkpoint import checkpoint_load
from modeling.ml.errors import NO_LABELS
from modeling.models import ModelVersion, TrainingRun, ValidationItem, ValidationRound
from modeling.selectors.training import training_set_select
from modeling.services.training import (
    artifact_verified,
    training_run_cancel,
    training_run_create,
    training_run_execute,
)
from modeling.services.triage import triage_record
from tests.factories import (
    faces_code,
    make_faces,
    make_study,
    make_user,
    quick_users,
    votes_cast,
)

pytestmark = pytest.mark.django_db


def _label(face, gender, *, usage=KnownLabel.Usage.TRAIN, source="import"):
    return KnownLabel.objects.create(face=face, source=source, usage=usage, gender=gender)


SPLIT = [{"gender": "female"}, {"gender": "male"}, {"gender": "cant_tell"}]


def _adjudicated(face, researcher, label):
    """A face split three ways by the study's only three coders (so no one is left for an
    extra vote and it goes straight to a researcher), then decided by that researcher."""
    assert votes_cast(face.pk, SPLIT).status == ConsensusStatus.ADJUDICATION
    face_adjudicate(face=face, researcher=researcher, label=label)


def test_training_set_takes_consensus_and_imported_labels_but_never_hidden_truth():
    study = make_study()
    admin = make_user(Role.ADMIN)
    faces = make_faces(study, 10)
    _adjudicated(faces[9], admin, "not_face")
    _adjudicated(faces[1], admin, "female")
    faces_code({faces[0].pk: {"gender": "female"}, faces[8].pk: {"gender": "not_face"}})
    quick_users(study, 1)  # a coder who could still cast the extra vote
    escalated = votes_cast(faces[2].pk, SPLIT)  # unresolved: not training data
    assert escalated.status == ConsensusStatus.ESCALATED
    _label(faces[3], "male")
    _label(faces[4], "female", usage=KnownLabel.Usage.TRUTH, source="truth")
    _label(faces[5], "cant_tell")
    _label(faces[6], "male")
    _label(faces[7], "female")
    _label(faces[8], "male")
    version = ModelVersion.objects.create(
        study=study, number=1, backbone="resnet18", weights="none"
    )
    round_ = ValidationRound.objects.create(study=study, version=version, size=1, seed=1)
    ValidationItem.objects.create(round=round_, face=faces[6])
    triage_record(face=faces[7], version=version, decision="not_face", decided_by=admin)

    from annotate.models import Face

    # faces[3] is a near-duplicate of faces[0]; an equal 64-bit phash alone is not one.
    Face.objects.filter(pk=faces[3].pk).update(near_duplicate_of=faces[0])
    Face.objects.filter(pk__in=[faces[0].pk, faces[1].pk]).update(phash="00ff00ff00ff00ff")

    training = training_set_select(study=study)

    got = {e.face_id: (e.label, e.source) for e in training.examples}
    assert got == {
        faces[0].pk: ("female", "consensus"),
        faces[1].pk: ("female", "adjudication"),
        faces[3].pk: ("male", "imported"),
    }
    assert training.excluded == {"in_validation": 1, "triaged_not_face": 1, "coding_excluded": 1}
    groups = {e.face_id: e.group for e in training.examples}
    assert groups[faces[0].pk] == groups[faces[3].pk] != groups[faces[1].pk]  # same fold
    assert training.triage["not_face"] == 1


def _run(study, config):
    run = training_run_create(study=study, requested_by=make_user(Role.ADMIN), config=config)
    return training_run_execute(run_id=run.pk)


def test_no_labeled_faces_fails_the_run_with_the_reason(tiny_config):
    study = make_study()
    make_faces(study, 5)
    run = _run(study, tiny_config)
    assert run.status == JobStatus.FAILED
    assert run.error == NO_LABELS
    assert not ModelVersion.objects.exists()


def test_one_class_only_fails_the_run_with_the_reason(tiny_config):
    study = make_study()
    for face in make_faces(study, 12):
        _label(face, "female")
    run = _run(study, tiny_config)
    assert run.status == JobStatus.FAILED
    assert "Only one class ('female') among the 12 labeled faces" in run.error


def test_too_few_faces_per_fold_fails_the_run_with_the_reason(tiny_config):
    study = make_study()
    faces = make_faces(study, 12)
    for i, face in enumerate(faces):
        _label(face, "female" if i < 9 else "male")
    run = _run(study, tiny_config)
    assert run.status == JobStatus.FAILED
    assert "Too few faces for 3-fold cross-validation" in run.error
    assert "male 3" in run.error


def test_only_admins_may_retrain(tiny_config):
    study = make_study()
    with pytest.raises(PermissionDenied):
        training_run_create(
            study=study, requested_by=make_user(Role.RESEARCHER), config=tiny_config
        )
    assert not TrainingRun.objects.exists()


def test_invalid_backbone_is_refused_before_anything_is_created():
    study = make_study()
    with pytest.raises(
        ValueError, match="valid backbones: efficientnet_b0, efficientnet_lite0, mobilenet_v3_large"
    ):
        training_run_create(study=study, config={"backbone": "vgg"})
    assert not TrainingRun.objects.exists()


def test_cancelling_a_queued_run_ends_it_cancelled(tiny_config):
    study = make_study()
    admin = make_user(Role.ADMIN)
    run = training_run_create(study=study, requested_by=admin, config=tiny_config)
    training_run_cancel(run=run, user=admin)
    run = training_run_execute(run_id=run.pk)
    assert run.status == JobStatus.CANCELLED
    assert not ModelVersion.objects.exists()


def test_a_run_trains_a_version_with_snapshot_metrics_by_subgroup_and_checkpoint(tiny_config):
    study = demo_study_load(slug="svc", faces=120, seed=5).study
    run = _run(study, tiny_config)
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert run.progress == 100 and run.stage == TrainingRun.Stage.DONE
    snapshot = run.dataset
    assert snapshot["n"] == 48 and len(snapshot["face_ids"]) == 48
    assert sum(snapshot["class_counts"].values()) == 48
    assert set(snapshot["subgroup_counts"]) >= {"race", "age_band", "glasses", "quality"}
    assert run.labels_hash == snapshot["labels_hash"]
    version = run.version
    assert version.number == 1 and not version.is_active
    assert version.weights == "none(seed=1)"
    by_subgroup = version.metrics["cv"]["by_subgroup"]
    assert all(set(row) == set(RESULT_COLUMNS) for row in by_subgroup)  # JSONB reorders keys
    # Unknown values form no group: the demo's labelled faces come from no search, so they
    # have no job or country.
    attributes = face_attributes_frame(face_ids=snapshot["face_ids"])
    known = {name: attributes[name].ne("").sum() for name in SUBGROUP_ATTRIBUTES}
    assert {row["attribute"] for row in by_subgroup} == {k for k, n in known.items() if n}
    assert {"race", "age_band", "glasses", "quality"} <= {k for k, n in known.items() if n}
    for name, n in known.items():
        assert sum(row["n"] for row in by_subgroup if row["attribute"] == name) == n
    checkpoint = checkpoint_load(artifact_verified(version))
    assert checkpoint["classes"] == ["male", "female"]
    assert checkpoint["config"]["backbone"] == "resnet18"
    assert checkpoint["metrics"]["cv"]["accuracy"] == version.metrics["cv"]["accuracy"]
    assert isinstance(checkpoint["head"]["fc1.weight"], torch.Tensor)
    # The second run reads every face's features from the cache.
    second = _run(study, tiny_config)
    assert second.metrics["cache"] == {"hits": 48, "misses": 0}
    assert second.version.number == 2
    assert second.metrics["cv"]["accuracy"] == version.metrics["cv"]["accuracy"]


def test_cancel_while_running_stops_at_the_next_batch_and_creates_no_version(
    tiny_config, monkeypatch
):
    import modeling.services.training as training

    study = demo_study_load(slug="cancel", faces=60, seed=5).study
    admin = make_user(Role.ADMIN)
    run = training_run_create(study=study, requested_by=admin, config=tiny_config)
    real = training.train_model
    stages = []

    def cancelling_train_model(**kwargs):
        progress = kwargs["progress"]

        def spy(stage, fraction):
            stages.append(stage)
            if stage == "cv":  # an admin clicks Cancel while cross-validation runs
                training_run_cancel(run=run, user=admin)
            progress(stage, fraction)

        return real(**{**kwargs, "progress": spy})

    monkeypatch.setattr(training, "train_model", cancelling_train_model)
    run = training_run_execute(run_id=run.pk)
    assert run.status == JobStatus.CANCELLED and run.finished_at is not None
    assert "fit" not in stages  # stopped during CV, before the final fit
    assert not ModelVersion.objects.exists()
