"""A researcher opens the estimates page of the demo study and downloads a CSV."""

from __future__ import annotations

import pandas as pd
import pytest
from django.urls import reverse

from annotate.services.demo import (
    DEMO_PASSWORD,
    demo_accounts_ensure,
    demo_members_add,
    demo_study_load,
)
from modeling.selectors.estimates import EstimateOptions, estimate_tables
from modeling.services.validation import validation_results_compute, validation_round_create
from modeling.templatetags.validation_format import pct
from tests.conftest import login
from tests.modeling.validation_factories import code_faces, make_version, predict_from_hidden_truth

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_researcher_opens_demo_estimates_and_downloads_csv(page, live_server, tmp_path):
    demo_accounts_ensure()
    study = demo_study_load(faces=160, seed=7).study
    demo_members_add(study=study)
    version = make_version(study, active=True)
    truth = predict_from_hidden_truth(study, version, error=0.1, seed=3)
    round = validation_round_create(version=version, size=60, seed=1, min_per_group=0)
    code_faces(round.items.values_list("face_id", flat=True), truth)
    validation_results_compute(round_id=round.pk)

    login(page, live_server, "researcher", DEMO_PASSWORD)
    page.goto(f"{live_server.url}{reverse('annotate:study_detail', args=[study.slug])}")
    page.get_by_test_id("estimates-link").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("heading", name="Share of women pictured").is_visible()
    expected = estimate_tables(version=version, options=EstimateOptions()).combined()
    job_rows = expected[expected["by"] == "job"]
    table = page.get_by_test_id("estimates-job")
    for _, row in job_rows.iterrows():
        assert pct(row["corrected_share"]) in table.inner_text()

    with page.expect_download() as info:
        page.get_by_test_id("download-csv").click()
    path = tmp_path / "estimates.csv"
    info.value.save_as(path)
    downloaded = pd.read_csv(path)
    assert info.value.suggested_filename == "demo-estimates.csv"
    assert downloaded["by"].tolist() == expected["by"].tolist()
    for column in ("faces", "raw_share", "corrected_share", "ci_low", "ci_high"):
        pd.testing.assert_series_equal(
            downloaded[column].astype(float), expected[column].astype(float), check_exact=False
        )
