"""A researcher uploads a zip in a real browser and watches the progress bar reach the report."""

from __future__ import annotations

import pytest

from annotate.roles import Role
from tests.annotate import hostile
from tests.conftest import login
from tests.factories import PASSWORD, make_study, make_user

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_researcher_uploads_and_sees_progress_then_the_report(
    page, live_server, tmp_path, filesystem_broker, start_worker
):
    study = make_study("jobs", title="Jobs study")
    make_user(Role.RESEARCHER, username="res", study=study)
    archive = tmp_path / "photos.zip"
    archive.write_bytes(
        hostile.zip_bytes({"a.jpg": hostile.good_jpeg(256), "b.jpg": hostile.html_as_jpeg()})
    )
    start_worker(filesystem_broker, queues="default")
    login(page, live_server, "res", PASSWORD)
    page.goto(f"{live_server.url}/studies/jobs/")
    page.get_by_test_id("import-new-link").click()
    page.set_input_files("input[name=archive]", str(archive))
    page.get_by_role("button", name="Start import").click()
    page.wait_for_url("**/imports/*/")
    report = page.get_by_test_id("import-report")
    report.wait_for(state="visible", timeout=120_000)
    assert page.get_by_test_id("import-status").inner_text() == "Succeeded"
    assert page.get_by_test_id("import-progress").get_attribute("value") == "100"
    assert report.locator("[data-key=imported]").inner_text() == "1"
    assert report.locator("[data-key=faces_found]").inner_text() == "1"
    assert "not an image" in report.inner_text()


def test_progress_bar_follows_the_batch_while_the_page_is_open(page, live_server):
    from annotate.models import ImportBatch, JobStatus

    study = make_study("live", title="Live study")
    make_user(Role.RESEARCHER, username="res2", study=study)
    batch = ImportBatch.objects.create(
        study=study, source_name="big.zip", status=JobStatus.RUNNING, total=10, done=2
    )
    login(page, live_server, "res2", PASSWORD)
    page.goto(f"{live_server.url}/imports/{batch.pk}/")
    assert page.get_by_test_id("import-report").is_hidden()
    ImportBatch.objects.filter(pk=batch.pk).update(done=7)
    page.wait_for_function(
        # An arrow function: a bare expression would be eval'ed, which the CSP forbids.
        "() => document.querySelector('[data-testid=import-progress]').value === 70",
        timeout=10_000,
    )
    assert page.get_by_test_id("import-count").inner_text() == "7 / 10"
    ImportBatch.objects.filter(pk=batch.pk).update(
        done=10,
        status=JobStatus.SUCCEEDED,
        report={
            "duplicates_skipped": 12,
            "rejected_files": [{"file": "<b>x</b>.jpg", "reason": "not an image"}],
        },
    )
    report = page.get_by_test_id("import-report")
    report.wait_for(state="visible", timeout=10_000)
    assert report.locator("[data-key=duplicates_skipped]").inner_text() == "12"
    # Image and face counts are read from the rows (none here), never from a stored number.
    assert report.locator("[data-key=imported]").inner_text() == "0"
    assert "<b>x</b>.jpg" in report.inner_text()  # shown as text, not markup
