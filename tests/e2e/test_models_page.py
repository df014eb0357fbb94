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
        f"document.querySelector(\"tr[data-run-id='{run.pk}'] .run-percent\").textContent == '64 %'"
    )
    assert row.locator(".run-stage").inner_text() == "Cross-validation"
    assert row.locator("progress").get_attribute("value") == "64"
    TrainingRun.objects.filter(pk=run.pk).update(status="failed", error="Only one class")
    page.wait_for_selector("text=Only one class")
    page.wait_for_load_state("networkidle")
    assert page.locator(f"tr[data-run-id='{run.pk}'] .run-status").inner_text() == "Failed"
