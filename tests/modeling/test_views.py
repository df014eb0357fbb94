"""Models pages and actions: who may do what, messages, the progress JSON, the card."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotate.roles import Role
from config.celery import BROKER_UNAVAILABLE_MESSAGE
from modeling.models import TrainingRun
from tests.conftest import Broker, use_broker
from tests.factories import make_study, make_user
from tests.modeling.helpers import trained_version

pytestmark = pytest.mark.django_db


def test_models_page_lists_versions_with_cv_metrics_and_links_to_the_card(client):
    version = trained_version()
    researcher = make_user(Role.RESEARCHER, study=version.study)
    client.force_login(researcher)
    page = client.get(reverse("modeling:study_models", args=[version.study.slug]))
    assert page.status_code == 200
    html = page.content.decode()
    card_url = reverse("modeling:version_detail", args=[version.study.slug, 1])
    assert card_url in html
    assert f"{version.metrics['cv']['accuracy']:.3f}" in html
    assert 'name="retrain"' not in html  # researchers see no retrain button
    card = client.get(card_url).content.decode()
    for text in ("Dataset snapshot", "Class balance", "Cross-validation by subgroup", "age_band"):
        assert text in card
    assert version.training_run.labels_hash in card
    for row in version.metrics["cv"]["by_subgroup"]:  # the rows training stored
        assert f'<td>{row["group"]}</td><td class="num">{row["n"]}</td>' in card
    assert "Activate v1" not in card


def test_study_page_links_to_the_models_page(client):
    study = make_study()
    client.force_login(make_user(Role.RESEARCHER, study=study))
    html = client.get(reverse("annotate:study_detail", args=[study.slug])).content.decode()
    assert reverse("modeling:study_models", args=[study.slug]) in html


def test_researcher_of_another_study_is_refused(client):
    study = make_study()
    client.force_login(make_user(Role.RESEARCHER))
    assert client.get(reverse("modeling:study_models", args=[study.slug])).status_code == 403
    assert client.get(reverse("modeling:status", args=[study.slug])).status_code == 403


def test_admin_retrain_creates_a_queued_run_and_the_status_json_shows_it(client):
    study = make_study()
    client.force_login(make_user(Role.ADMIN))
    response = client.post(
        reverse("modeling:retrain", args=[study.slug]),
        {"backbone": "resnet18", "weights": "none", "epochs": 3, "folds": 2},
        follow=True,
    )
    run = TrainingRun.objects.get()
    assert run.config["backbone"] == "resnet18" and run.status == "queued"
    assert f"Training run #{run.pk} queued." in response.content.decode()
    status = client.get(reverse("modeling:status", args=[study.slug])).json()
    assert status["training"][0] | {} == status["training"][0]
    assert status["training"][0]["id"] == run.pk and status["training"][0]["live"]
    assert status["training"][0]["stage_label"] == "Waiting for a worker"


def test_researcher_cannot_retrain(client):
    study = make_study()
    client.force_login(make_user(Role.RESEARCHER, study=study))
    response = client.post(reverse("modeling:retrain", args=[study.slug]), {"backbone": "resnet18"})
    assert response.status_code == 403
    assert not TrainingRun.objects.exists()


def test_retrain_with_redis_unreachable_says_so_and_creates_nothing(client):
    study = make_study()
    client.force_login(make_user(Role.ADMIN))
    with use_broker(Broker("redis://127.0.0.1:1/0", {})):
        response = client.post(
            reverse("modeling:retrain", args=[study.slug]),
            {"backbone": "resnet18", "weights": "none", "epochs": 3, "folds": 2},
            follow=True,
        )
    html = response.content.decode()
    assert "The task queue is unreachable" in html and "nothing was created" in html
    assert BROKER_UNAVAILABLE_MESSAGE.split("(")[0] in html
    assert not TrainingRun.objects.exists()


def test_cancel_button_cancels_a_queued_run(client):
    study = make_study()
    client.force_login(make_user(Role.ADMIN))
    client.post(
        reverse("modeling:retrain", args=[study.slug]),
        {"backbone": "resnet18", "weights": "none", "epochs": 3, "folds": 2},
    )
    run = TrainingRun.objects.get()
    page = client.get(reverse("modeling:study_models", args=[study.slug])).content.decode()
    assert reverse("modeling:run_cancel", args=[study.slug, run.pk]) in page
    client.post(reverse("modeling:run_cancel", args=[study.slug, run.pk]))
    run.refresh_from_db()
    assert run.status == "cancelled" and run.cancel_requested


def test_failed_run_shows_its_reason(client):
    study = make_study()
    admin = make_user(Role.ADMIN)
    TrainingRun.objects.create(study=study, status="failed", error="Only one class ('female')")
    client.force_login(admin)
    html = client.get(reverse("modeling:study_models", args=[study.slug])).content.decode()
    assert "Only one class (&#x27;female&#x27;)" in html


def test_admin_activates_from_the_card(client):
    version = trained_version()
    client.force_login(make_user(Role.ADMIN))
    url = reverse("modeling:activate", args=[version.study.slug, version.number])
    html = client.post(url, {}, follow=True).content.decode()
    assert "Version 1 is now active" in html
    version.refresh_from_db()
    assert version.is_active


def test_admin_action_on_study_queues_a_run_with_a_backbone_whose_weights_are_here(
    client, tmp_path, monkeypatch
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no ResNet-50 file: offline
    study = make_study()
    client.force_login(make_user(Role.ADMIN))
    response = client.post(
        "/admin/annotate/study/",
        {"action": "study_retrain", "_selected_action": [study.pk]},
        follow=True,
    )
    assert response.status_code == 200
    run = TrainingRun.objects.get()
    assert run.study == study and run.config["backbone"] == "efficientnet_lite0"
    assert run.config["weights"] == "default"
    assert f"training run #{run.pk} queued" in response.content.decode()


def test_gate_refusal_is_shown_and_an_override_reason_activates(client):
    from tests.modeling.helpers import version_with_metrics

    study = make_study()
    v1 = version_with_metrics(study, 1, {"black": (40, 0.9)})
    version_with_metrics(study, 2, {"black": (40, 0.7)})
    client.force_login(make_user(Role.ADMIN))
    client.post(reverse("modeling:activate", args=[study.slug, 1]))
    url = reverse("modeling:activate", args=[study.slug, 2])
    html = client.post(url, {}, follow=True).content.decode()
    assert "Activation refused" in html and "race = black" in html
    v1.refresh_from_db()
    assert v1.is_active
    client.post(url, {"override_reason": "checked by hand"})
    assert study.model_versions.get(is_active=True).gate_override_reason == "checked by hand"
