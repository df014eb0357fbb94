"""`manage.py train` and `manage.py predict`."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from annotate.services.demo import demo_study_load
from modeling.models import Prediction, TrainingRun
from modeling.services.activation import version_activate
from tests.modeling.helpers import admin_user

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
    version_activate(version=version, user=admin_user())  # queues a run; the command runs one too
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
