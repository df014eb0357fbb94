"""The round results page, the rounds list, version comparison; coders are refused."""

from __future__ import annotations

import pandas as pd
import pytest
from django.urls import reverse

from annotate.roles import Role
from modeling.appendix import methods_appendix
from modeling.exports import export_frame
from modeling.models import ValidationRound
from modeling.services.validation import (
    cv_by_subgroup,
    validation_results_compute,
    validation_round_create,
)
from modeling.templatetags.validation_format import pct
from tests.factories import make_plain_faces, make_study, make_user
from tests.modeling.helpers import trained_version
from tests.modeling.validation_factories import code_faces, make_version, plant

pytestmark = pytest.mark.django_db


@pytest.fixture
def cv_metrics():
    """What training stores for a tiny real model (resnet18, no weights, 64 px)."""
    return trained_version("cv-source", faces=100).metrics


def _round(study, faces, *, number, weak_error, seed, size=500, metrics=None):
    version = make_version(study, number=number, active=number == 1, metrics=metrics)
    truth = plant(faces, version, coded=False, seed=seed, weak_error=weak_error)
    round = validation_round_create(version=version, size=size, seed=seed, min_per_group=30)
    return version, truth, round


@pytest.fixture
def complete(coding_flow, cv_metrics):
    study = make_study()
    faces = make_plain_faces(study, 700)
    version, truth, round = _round(
        study, faces, number=1, weak_error=0.45, seed=3, metrics=cv_metrics
    )
    code_faces(round.items.values_list("face_id", flat=True), truth)
    round = validation_results_compute(round_id=round.pk)
    return study, version, round


def _row_html(html: str, attribute: str, group: str) -> str:
    start = html.index(f"<td>{attribute}</td><td>{group}</td>")
    return html[start : html.index("</tr>", start)]


def test_results_page_shows_subgroups_flags_cv_charts_and_confusion(client, complete):
    study, version, round = complete
    client.force_login(make_user(Role.RESEARCHER, study=study))
    html = client.get(reverse("modeling:validation_round", args=[round.pk])).content.decode()
    assert pct(round.results["overall"]["accuracy"]) in html
    assert '<tr class="flagged">' in html and "<td>age_band</td><td>3-9</td>" in html
    # Flagged groups come first, before any table, with the rule that flagged them.
    top = html[
        html.index('data-testid="flagged-groups"') : html.index('data-testid="subgroup-table"')
    ]
    assert "age_band: 3-9" in top
    assert "Fisher exact" in top and "Benjamini–Hochberg" in top and "at most 0.05" in top
    # The CV column holds what training stored for the same group.
    cv = {(r["attribute"], r["group"]): r for r in version.metrics["cv"]["by_subgroup"]}
    shown = [key for key in cv if f"<td>{key[0]}</td><td>{key[1]}</td>" in html]
    assert shown
    for attribute, group in shown:
        assert pct(cv[(attribute, group)]["accuracy"]) in _row_html(html, attribute, group)
    assert html.count("<svg") == 3  # bars, confusion matrix, reliability diagram
    assert "rows: human label" in html and "columns: model predicted" in html
    assert "Two-way intersections" in html and "age_band × glasses" in html
    few = [r for r in round.results["by_subgroup"] if " × " in r["attribute"] and r["too_few"]]
    details = html[html.index('<details data-testid="intersections-too-few">') :]
    assert few and f"<td>{few[0]['attribute']}</td><td>{few[0]['group']}</td>" in details
    assert 'data-testid="computed-at"' in html and " ago" in html
    assert "Precision" in html and "Recall" in html


def test_export_and_appendix_put_cv_accuracy_beside_the_human_figure(client, complete):
    study, version, round = complete
    cv = {(r["attribute"], r["group"]): r["accuracy"] for r in cv_by_subgroup(version)}
    frame = export_frame(study=study, what="validation", round_id=round.pk)
    assert frame.loc[0, "cv_accuracy"] == pytest.approx(version.metrics["cv"]["accuracy"])
    matched = 0
    for row in frame.iloc[1:].itertuples():
        expected = cv.get((row.attribute, row.group))
        if expected is None:
            assert pd.isna(row.cv_accuracy)
        else:
            matched += 1
            assert row.cv_accuracy == pytest.approx(expected)
    assert matched and {"p_value", "p_adjusted"} <= set(frame.columns)
    data = methods_appendix(study=study, version=version)
    rows = {(r["attribute"], r["group"]): r for r in data["human_validation"]["by_subgroup"]}
    for key, accuracy in cv.items():
        if key in rows:
            assert rows[key]["cv_accuracy"] == pytest.approx(accuracy)
    assert data["missing"] == [] and "Benjamini–Hochberg" in data["human_validation"]["flag_rule"]


def test_results_and_gallery_pages_refuse_coders(client, complete):
    study, version, round = complete
    client.force_login(make_user(Role.CODER, study=study))
    for url in (
        reverse("modeling:validation_round", args=[round.pk]),
        reverse("modeling:gallery", args=[version.pk]),
        reverse("modeling:validation_rounds", args=[study.slug]),
        reverse("modeling:estimates", args=[study.slug]),
        reverse("modeling:version_compare", args=[study.slug]),
    ):
        assert client.get(url).status_code == 403, url


def test_researcher_opens_a_round_from_the_page_and_sees_clear_refusals(client, coding_flow):
    study = make_study()
    faces = make_plain_faces(study, 50)
    version = make_version(study, active=True)
    plant(faces, version, coded=False)
    client.force_login(make_user(Role.RESEARCHER, study=study))
    url = reverse("modeling:validation_rounds", args=[study.slug])
    response = client.post(url, {"version": version.pk, "size": 60}, follow=True)
    assert "Only 50 faces are eligible" in response.content.decode()
    assert not ValidationRound.objects.exists()
    response = client.post(url, {"version": version.pk, "size": 20, "seed": 4, "min_per_group": 5})
    round = ValidationRound.objects.get()
    assert response["Location"] == reverse("modeling:validation_round", args=[round.pk])
    assert round.seed == 4 and round.items.count() == 20 and round.created_by is not None
    page = client.get(response["Location"]).content.decode()
    assert 'data-testid="round-progress">0 / 20' in page
    empty = make_version(study)
    response = client.post(url, {"version": empty.pk, "size": 5}, follow=True)
    assert "has no predictions yet" in response.content.decode()


def test_compute_on_demand_enqueues_on_the_broker(
    client, complete, filesystem_broker, monkeypatch, django_capture_on_commit_callbacks
):
    study, version, round = complete
    client.force_login(make_user(Role.RESEARCHER, study=study))
    sent = []
    monkeypatch.setattr("modeling.tasks.validation_results.delay", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("modeling:validation_compute", args=[round.pk]))
    assert response.status_code == 302
    round.refresh_from_db()
    assert round.status == ValidationRound.Status.COMPUTING
    assert sent == [round.pk]


def test_version_comparison_shows_whether_the_gap_closed(client, coding_flow):
    study = make_study()
    faces = make_plain_faces(study, 700)
    v1, truth, r1 = _round(study, faces, number=1, weak_error=0.45, seed=3)
    v2, _, r2 = _round(study, faces, number=2, weak_error=0.05, seed=3)  # same truth, seed 3
    sampled = set(r1.items.values_list("face_id", flat=True))
    sampled |= set(r2.items.values_list("face_id", flat=True))
    code_faces(sampled, truth)
    for round in (r1, r2):
        validation_results_compute(round_id=round.pk)
    client.force_login(make_user(Role.RESEARCHER, study=study))
    html = client.get(
        reverse("modeling:version_compare", args=[study.slug]), {"a": v1.pk, "b": v2.pk}
    ).content.decode()
    assert 'data-testid="compare-table"' in html
    assert "gap closed" in html


def test_opening_a_fully_coded_round_starts_its_computation_once(
    client, coding_flow, filesystem_broker, monkeypatch, django_capture_on_commit_callbacks
):
    study = make_study()
    faces = make_plain_faces(study, 60)
    version, truth, round = _round(study, faces, number=1, weak_error=0.1, seed=1, size=30)
    code_faces(round.items.values_list("face_id", flat=True), truth)
    sent = []
    monkeypatch.setattr("modeling.tasks.validation_results.delay", sent.append)
    client.force_login(make_user(Role.RESEARCHER, study=study))
    url = reverse("modeling:validation_round", args=[round.pk])
    with django_capture_on_commit_callbacks(execute=True):
        first = client.get(url).content.decode()
        client.get(url)
    assert sent == [round.pk] and 'data-testid="computing"' in first


def test_study_page_links_to_validation_estimates_and_galleries(client):
    study = make_study()
    version = make_version(study)
    client.force_login(make_user(Role.RESEARCHER, study=study))
    html = client.get(reverse("annotate:study_detail", args=[study.slug])).content.decode()
    for url in (
        reverse("modeling:validation_rounds", args=[study.slug]),
        reverse("modeling:estimates", args=[study.slug]),
        reverse("modeling:gallery", args=[version.pk]),
        reverse("modeling:exports", args=[study.slug]),
        reverse("modeling:appendix", args=[study.slug]),
    ):
        assert f'href="{url}' in html, url
