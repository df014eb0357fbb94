"""The misclassification gallery: filters, error direction, confidence order, SQL paging."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotate.roles import Role
from modeling.selectors.gallery import (
    EMPTY_FILTERS,
    EMPTY_NO_ERRORS,
    EMPTY_NO_HUMAN_LABELS,
    EMPTY_NO_PREDICTIONS,
    PAGE_SIZE,
    GalleryFilterError,
    GalleryFilters,
    gallery_empty_reason,
    gallery_group_values,
    gallery_page,
    gallery_queryset,
)
from tests.factories import make_plain_faces, make_study, make_user
from tests.modeling.validation_factories import make_version, plant

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
    with pytest.raises(GalleryFilterError, match="Choose the attribute that group '3-9'"):
        gallery_queryset(version=version, filters=GalleryFilters(group="3-9"))
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
    assert len(queries) <= 5  # count, page rows (joined), votes, triage verdicts, history
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
    # Crops and sources through the access-checked media views, never a file path.
    assert "/media/" not in html and '/crop/"' in html and 'href="/images/' in html
    bad = client.get(url + "?attribute=shoe&group=x")
    assert bad.status_code == 400 and "Unknown attribute" in bad.content.decode()
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


def test_group_filter_offers_the_values_in_this_version_s_predictions(client, planted):
    study, version, truth = planted
    other = make_version(study)
    plant(
        make_plain_faces(study, 4, jobs=("welder",), countries=("fr",)),
        other,
        base_error=1.0,
        weak_error=1.0,
    )
    values = gallery_group_values(version=version)
    assert values["age_band"] == sorted({t["age_band"] for t in truth.values()})
    assert values["race"] == sorted({t["race"] for t in truth.values()})
    assert values["job"] == ["nurse", "pilot"] and values["country"] == ["de", "us"]
    assert values["quality"] == ["good"]  # only the values that occur, not every choice
    assert gallery_group_values(version=other)["job"] == ["welder"]

    client.force_login(make_user(Role.RESEARCHER, study=study))
    url = reverse("modeling:gallery", args=[version.pk])
    html = client.get(url + "?attribute=age_band&group=3-9").content.decode()
    select = html.split('<select name="group"')[1].split("</select>")[0]
    assert '<optgroup label="age_band" data-attribute="age_band">' in select
    assert '<option value="3-9" selected>3-9</option>' in select
    assert "welder" not in select and select.count(" selected") == 1
    assert 'src="/static/js/gallery.js"' in html
    # a filter from a link that no option lists (an intersection) stays visible and selected
    html = client.get(url + "?attribute=age_band+%C3%97+glasses&group=3-9+%C3%97+none")
    html = html.content.decode()
    assert '<option value="age_band × glasses" selected>' in html
    assert '<option value="3-9 × none" selected>' in html


def test_directions_read_as_what_the_model_and_the_humans_said(client, planted):
    study, version, truth = planted
    client.force_login(make_user(Role.RESEARCHER, study=study))
    url = reverse("modeling:gallery", args=[version.pk])
    html = client.get(url + "?direction=female_to_male").content.decode()
    assert (
        '<option value="female_to_male" selected>Model said male, humans said female</option>'
        in html
    )
    assert "femaletomale" not in html
    cards = html.split('data-testid="face-card"')[1:]
    assert cards and all("Model said male, humans said female" in card for card in cards)
    html = client.get(url + "?show=all").content.decode()
    said = {
        face_id: f"Model said {t['predicted']}, humans said {t['truth']}"
        for face_id, t in truth.items()
    }
    for card in html.split('data-testid="face-card"')[1:]:
        face_id = int(card.split('data-face="')[1].split('"')[0])
        assert (said[face_id] in card) == (truth[face_id]["truth"] != truth[face_id]["predicted"])


def test_an_empty_gallery_says_why_and_how_to_get_results(client):
    study = make_study()
    faces = make_plain_faces(study, 8)
    researcher = make_user(Role.RESEARCHER, study=study)
    client.force_login(researcher)

    def shown(version, query=""):
        html = client.get(reverse("modeling:gallery", args=[version.pk]) + query)
        html = html.content.decode()
        assert 'data-testid="face-card"' not in html and 'data-testid="gallery-count"' not in html
        return html.split('data-testid="gallery-empty" data-reason="')[1].split("</div>")[0]

    unpredicted = make_version(study)
    assert gallery_empty_reason(version=unpredicted, filters=GalleryFilters()) == (
        EMPTY_NO_PREDICTIONS
    )
    card = shown(unpredicted)
    assert "has not predicted any faces yet" in card
    assert reverse("modeling:version_detail", args=[study.slug, unpredicted.number]) in card
    assert f"manage.py predict --study {study.slug} --version {unpredicted.number}" in card

    uncoded = make_version(study)
    plant(faces, uncoded, coded=False)
    assert gallery_empty_reason(version=uncoded, filters=GalleryFilters()) == (
        EMPTY_NO_HUMAN_LABELS
    )
    card = shown(uncoded)
    assert "has an agreed human label yet" in card
    assert reverse("modeling:validation_rounds", args=[study.slug]) in card
    assert gallery_page(version=uncoded, filters=GalleryFilters(show="all")).paginator.count == 8

    perfect = make_version(study)
    plant(make_plain_faces(study, 8), perfect, base_error=0.0, weak_error=0.0)
    assert gallery_empty_reason(version=perfect, filters=GalleryFilters()) == EMPTY_NO_ERRORS
    assert "agrees with the coders on every face" in shown(perfect)
    nothing = GalleryFilters(show="all", job="astronaut")
    assert gallery_empty_reason(version=perfect, filters=nothing) == EMPTY_FILTERS
    card = shown(perfect, "?show=all&job=astronaut")
    assert "No face matches these filters" in card
    assert f'href="{reverse("modeling:gallery", args=[perfect.pk])}"' in card
