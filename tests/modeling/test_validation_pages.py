"""The round results page, the rounds list, version comparison; coders are refused."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotate.roles import Role
from modeling.models import ValidationRound
from modeling.services.validation import validation_results_compute, validation_round_create
from modeling.templatetags.validation_format import pct
from tests.factories import make_study, make_user
from tests.modeling.validation_factories import code_faces, make_plain_faces, make_version, plant

pytestmark = pytest.mark.django_db

CV = {
    "cv": {
        "accuracy": 0.93,
        "by_subgroup": [{"attribute": "age_band", "group": "3-9", "n": 55, "accuracy": 0.871}],
    }
}


def _round(study, faces, *, number, weak_error, seed, size=500):
    version = make_version(study, number=number, active=number == 1, metrics=CV)
    truth = plant(faces, version, coded=False, seed=seed, weak_error=weak_error)
    round = validation_round_create(version=version, size=size, seed=seed, min_per_group=30)
    return version, truth, round


@pytest.fixture
def complete(coding_flow):
    study = make_study()
    faces = make_plain_faces(study, 700)
    version, truth, round = _round(study, faces, number=1, weak_error=0.45, seed=3)
    code_faces(round.items.values_list("face_id", flat=True), truth)
    round = validation_results_compute(round_id=round.pk)
    return study, version, round


def test_results_page_shows_subgroups_flags_cv_charts_and_confusion(client, complete):
    study, version, round = complete
    client.force_login(make_user(Role.RESEARCHER, study=study))
    html = client.get(reverse("modeling:validation_round", args=[round.pk])).content.decode()
    assert pct(round.results["overall"]["accuracy"]) in html
    assert '<tr class="flagged">' in html and "<td>age_band</td><td>3-9</td>" in html
    assert "87.1 %" in html  # the CV figure beside the human one
    assert html.count("<svg") == 3  # bars, confusion matrix, reliability diagram
    assert "Two-way intersections" in html and "age_band × glasses" in html
    assert "too few" in html or all(not r["too_few"] for r in round.results["by_subgroup"])
    assert "Precision" in html and "Recall" in html


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
    monkeypatch.setattr("modeling.validation_tasks.validation_results.delay", sent.append)
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
    monkeypatch.setattr("modeling.validation_tasks.validation_results.delay", sent.append)
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
