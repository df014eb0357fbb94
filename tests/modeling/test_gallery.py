"""The misclassification gallery: filters, error direction, confidence order, SQL paging."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotate.roles import Role
from modeling.selectors.gallery import (
    PAGE_SIZE,
    GalleryFilterError,
    GalleryFilters,
    gallery_page,
    gallery_queryset,
)
from tests.factories import make_study, make_user
from tests.modeling.validation_factories import make_plain_faces, make_version, plant

pytestmark = pytest.mark.django_db


@pytest.fixture
def planted():
    study = make_study()
    faces = make_plain_faces(study, 300)
    version = make_version(study, active=True)
    truth = plant(faces, version, base_error=0.1, weak_error=0.5, seed=4)
    return study, version, truth


def _errors(planted_truth, **match):
    return {
        i
        for i, t in planted_truth.items()
        if t["truth"] != t["predicted"] and all(t[k] == v for k, v in match.items())
    }


def test_gallery_holds_exactly_the_misclassified_faces(planted):
    study, version, truth = planted
    ids = set(
        gallery_queryset(version=version, filters=GalleryFilters()).values_list(
            "face_id", flat=True
        )
    )
    assert ids == _errors(truth)


def test_filters_by_subgroup_intersection_and_direction(planted):
    study, version, truth = planted
    weak = gallery_queryset(
        version=version, filters=GalleryFilters(attribute="age_band", group="3-9")
    )
    assert set(weak.values_list("face_id", flat=True)) == _errors(truth, age_band="3-9")
    pair = gallery_queryset(
        version=version,
        filters=GalleryFilters(
            attribute="age_band × glasses", group="3-9 × none", direction="female_to_male"
        ),
    )
    expected = _errors(truth, age_band="3-9", glasses="none", truth="female")
    assert set(pair.values_list("face_id", flat=True)) == expected
    job = gallery_queryset(version=version, filters=GalleryFilters(attribute="job", group="nurse"))
    assert all(p.face.source_image.job == "nurse" for p in job.select_related("face__source_image"))


def test_most_confident_errors_come_first(planted):
    study, version, truth = planted
    confidences = [
        abs(p.probability - 0.5)
        for p in gallery_queryset(version=version, filters=GalleryFilters())
    ]
    assert confidences == sorted(confidences, reverse=True) and len(confidences) > 10


def test_bad_filters_say_which_values_work(planted):
    study, version, truth = planted
    with pytest.raises(GalleryFilterError, match="choose one of"):
        gallery_queryset(version=version, filters=GalleryFilters(attribute="shoe", group="x"))
    with pytest.raises(GalleryFilterError, match="direction"):
        gallery_queryset(version=version, filters=GalleryFilters(direction="sideways"))
    with pytest.raises(GalleryFilterError, match="same number"):
        gallery_queryset(
            version=version, filters=GalleryFilters(attribute="race × glasses", group="black")
        )


def test_a_page_costs_a_fixed_number_of_queries_whatever_the_size():
    study = make_study()
    faces = make_plain_faces(study, 1200)
    version = make_version(study)
    plant(
        faces, version, base_error=1.0, weak_error=1.0
    )  # every face an error: 1200 in the gallery
    with CaptureQueriesContext(connection) as queries:
        page = gallery_page(version=version, filters=GalleryFilters(), page=3)
        cards = list(page.object_list)
    assert page.paginator.count == 1200 and len(cards) == PAGE_SIZE
    assert len(queries) <= 4  # count, page rows (joined), votes, triages
    assert "LIMIT" in queries[1]["sql"].upper()


def test_gallery_page_renders_cards_and_refuses_coders(client, planted):
    study, version, truth = planted
    url = reverse("modeling:gallery", args=[version.pk])
    client.force_login(make_user(Role.CODER, study=study))
    assert client.get(url).status_code == 403
    client.force_login(make_user(Role.RESEARCHER, study=study))
    response = client.get(url + "?attribute=age_band&group=3-9")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('data-testid="face-card"') == min(
        PAGE_SIZE, len(_errors(truth, age_band="3-9"))
    )
    assert "source image" in html and "P(female)" in html
    bad = client.get(url + "?attribute=shoe&group=x")
    assert bad.status_code == 200 and "Unknown attribute" in bad.content.decode()
    client.force_login(make_user(Role.RESEARCHER))  # not a member
    assert client.get(url).status_code == 403


def test_estimate_links_carry_the_rank_cutoff_into_the_gallery(client, planted):
    study, version, truth = planted
    client.force_login(make_user(Role.RESEARCHER, study=study))
    html = client.get(
        reverse("modeling:estimates", args=[study.slug]), {"rank": "5"}
    ).content.decode()
    link = reverse("modeling:gallery", args=[version.pk]) + "?job=nurse&amp;show=all&amp;rank=5"
    assert link in html
    qs = gallery_queryset(
        version=version, filters=GalleryFilters(show="all", job="nurse", max_rank=5)
    )
    ranks = set(qs.values_list("face__source_image__rank", flat=True))
    assert ranks and max(ranks) <= 5
