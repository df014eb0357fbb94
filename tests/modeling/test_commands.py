"""`manage.py train`, `manage.py predict` and `manage.py activate`."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from annotate.roles import Role
from annotate.services.demo import demo_study_load
from modeling.management.commands.activate import OVERRIDE_EMPTY
from modeling.models import Prediction, PredictionRun, TrainingRun
from modeling.services.activation import version_activate
from modeling.services.training import training_run_create, training_run_execute
from tests.factories import make_faces, make_study, make_user
from tests.modeling.conftest import TINY
from tests.modeling.helpers import trained_version, version_with_metrics

pytestmark = pytest.mark.django_db
TINY_ARGS = ["--backbone", "resnet18", "--weights", "none", "--epochs", "5", "--folds", "3"]


def test_train_inline_prints_the_metrics_as_json_and_predict_uses_the_active_version():
    study = demo_study_load(slug="cmd", faces=80, seed=2).study
    out = io.StringIO()
    call_command(
        "train", "--study", "cmd", *TINY_ARGS, "--image-size", "64", "--inline", stdout=out
    )
    report = json.loads(out.getvalue())
    assert report["status"] == "succeeded" and report["version"] == 1
    assert 0 <= report["cv_accuracy"] <= 1 and report["faces"] == 32
    assert set(report["cv_by_subgroup"]) >= {"race", "age_band", "glasses", "quality"}
    with pytest.raises(CommandError, match="has no active model version"):
        call_command("predict", "--study", "cmd", stdout=io.StringIO())
    version = study.model_versions.get()
    version_activate(
        version=version, user=make_user(Role.ADMIN)
    )  # queues a run; the command runs one too
    out = io.StringIO()
    call_command("predict", "--study", "cmd", "--inline", stdout=out)
    assert json.loads(out.getvalue())["status"] == "succeeded"
    assert Prediction.objects.filter(version=version).count() == study.faces.count()


def test_train_reports_bad_input_as_a_command_error():
    demo_study_load(slug="cmd2", faces=10, seed=2)
    with pytest.raises(CommandError, match="Too few faces"):
        call_command("train", "--study", "cmd2", *TINY_ARGS, "--inline", stdout=io.StringIO())
    assert TrainingRun.objects.get().status == "failed"
    with pytest.raises(CommandError, match="No study 'nope'"):
        call_command("train", "--study", "nope")


def test_predict_with_a_version_that_is_not_active_leaves_the_active_one(filesystem_broker):
    v1 = trained_version("cmd3", faces=40, seed=4)
    study = v1.study
    version_activate(version=v1, user=make_user(Role.ADMIN))
    run = training_run_create(study=study, config={**TINY, "epochs": 2}, enqueue=False)
    v2 = training_run_execute(run_id=run.pk).version
    out = io.StringIO()
    call_command("predict", "--study", "cmd3", "--version", "2", "--inline", stdout=out)
    assert json.loads(out.getvalue())["version"] == 2
    assert Prediction.objects.filter(version=v2).count() == study.faces.count()
    assert list(study.model_versions.filter(is_active=True)) == [v1]
    with pytest.raises(CommandError, match="Study cmd3 has no version 7"):
        call_command("predict", "--study", "cmd3", "--version", "7", stdout=io.StringIO())


def _gated_versions():
    study = make_study(slug="gate")
    make_faces(study, 2)
    v1 = version_with_metrics(study, 1, {"white": (50, 0.9), "black": (40, 0.9)})
    v2 = version_with_metrics(study, 2, {"white": (50, 0.95), "black": (40, 0.8)})
    return study, v1, v2


def test_activate_command_applies_the_gate_and_records_an_override(filesystem_broker):
    study, v1, v2 = _gated_versions()
    out = io.StringIO()
    call_command("activate", "--study", "gate", "--version", "1", stdout=out)
    run = PredictionRun.objects.get(version=v1)
    assert out.getvalue() == f"v1 of gate is now active; prediction run #{run.pk} queued.\n"
    err = io.StringIO()
    with pytest.raises(CommandError, match="Activation refused"):
        call_command("activate", "--study", "gate", "--version", "2", stderr=err)
    assert err.getvalue() == "gate: race = black: 80.0% vs 90.0% (n = 40)\n"
    assert list(study.model_versions.filter(is_active=True)) == [v1]
    out = io.StringIO()
    call_command(
        "activate",
        "--study",
        "gate",
        "--version",
        "2",
        "--override",
        "more children now",
        stdout=out,
    )
    assert "v2 of gate is now active (gate overridden)" in out.getvalue()
    v2.refresh_from_db()
    assert v2.is_active and v2.gate_override_reason == "more children now"
    assert v2.activated_by is None  # the command line, not a web user
    assert list(study.model_versions.filter(is_active=True)) == [v2]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--study", "nope", "--version", "1"], "No study 'nope'."),
        (["--study", "gate", "--version", "9"], "Study gate has no version 9; it has v1, v2."),
        (["--study", "gate", "--version", "2", "--override", "  "], OVERRIDE_EMPTY),
    ],
)
def test_activate_command_reports_bad_input_and_changes_nothing(args, message):
    study, v1, v2 = _gated_versions()
    with pytest.raises(CommandError) as error:
        call_command("activate", *args, stdout=io.StringIO())
    assert str(error.value) == message
    assert not study.model_versions.filter(is_active=True).exists()
    assert not PredictionRun.objects.exists()
