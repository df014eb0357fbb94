"""Validate before activating: shadow predictions, a round on a version that is not active,
and the comparison of two versions on the same faces (McNemar's exact test)."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command
from django.urls import reverse
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

from annotate.models import KnownLabel
from annotate.roles import Role
from modeling import charts
from modeling.evaluation import (
    COUNT_NEGATIVE,
    mcnemar_exact,
    paired_by_group,
    paired_difference_interval,
)
from modeling.models import ModelVersion, Prediction, PredictionRun, ValidationRound
from modeling.selectors.compare import DIFFERENT_STUDIES, versions_compare
from modeling.services.activation import version_activate
from modeling.services.prediction import predictions_run_execute, predictions_start
from modeling.services.training import training_run_create, training_run_execute
from tests.factories import make_plain_faces, make_study, make_user
from tests.modeling.conftest import TINY
from tests.modeling.helpers import trained_version
from tests.modeling.validation_factories import code_faces, make_version, plant

# --- the paired test and interval (pure) -------------------------------------------------


@pytest.mark.parametrize(
    "b,c", [(0, 0), (1, 0), (0, 7), (5, 9), (12, 3), (25, 25), (100, 130), (2000, 2100)]
)
def test_mcnemar_exact_equals_statsmodels(b, c):
    table = np.array([[40, b], [c, 11]])
    expected = mcnemar(table, exact=True).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("counts", [(-1, 3), (2.5, 1), ("3", 1)])
def test_mcnemar_exact_refuses_counts_that_are_not_whole_numbers(counts):
    with pytest.raises(ValueError) as error:
        mcnemar_exact(*counts)
    assert str(error.value) == COUNT_NEGATIVE.format(counts=counts)


def test_paired_difference_interval_covers_the_true_difference_at_close_to_95_percent():
    # Pairs (a right?, b right?) with accuracies 0.85 and 0.90 and correlated errors.
    probabilities = [0.80, 0.05, 0.10, 0.05]  # both, only a, only b, neither
    truth = (0.80 + 0.10) - (0.80 + 0.05)
    tables = np.random.default_rng(11).multinomial(150, probabilities, size=2000)
    covered = 0
    for both, a_only, b_only, neither in tables:
        difference, low, high = paired_difference_interval(
            both=both, a_only=a_only, b_only=b_only, neither=neither
        )
        assert -1 <= low <= difference <= high <= 1
        covered += low <= truth <= high
    assert 0.93 <= covered / len(tables) <= 0.975


def test_paired_difference_interval_is_undefined_without_faces_and_mirrors_when_swapped():
    assert all(
        math.isnan(v) for v in paired_difference_interval(both=0, a_only=0, b_only=0, neither=0)
    )
    forward = paired_difference_interval(both=30, a_only=2, b_only=9, neither=4)
    backward = paired_difference_interval(both=30, a_only=9, b_only=2, neither=4)
    assert forward[0] == pytest.approx(7 / 45)
    assert backward == pytest.approx((-forward[0], -forward[2], -forward[1]))


def test_paired_by_group_counts_discordant_faces_per_group():
    frame = pd.DataFrame(
        {
            "truth": ["female", "male", "female", "male", "female", "male"],
            "predicted_a": ["female", "female", "male", "male", "male", "male"],
            "predicted_b": ["female", "male", "female", "female", "male", "male"],
            "race": ["black", "black", "black", "white", "white", ""],
        }
    )
    table = paired_by_group(frame, attributes=["race"], min_n=3).set_index("group")
    assert list(table.index) == ["all", "black", "white"]  # unknown race forms no group
    black = table.loc["black"]
    assert (black["n"], black["a_only"], black["b_only"]) == (3, 0, 2)
    assert black["accuracy_a"] == pytest.approx(1 / 3) and black["accuracy_b"] == 1.0
    assert black["p_value"] == mcnemar_exact(0, 2)
    low, high = proportion_confint(1, 3, method="wilson")
    assert (black["ci_low_a"], black["ci_high_a"]) == pytest.approx((low, high))
    white = table.loc["white"]
    assert (white["a_only"], white["b_only"], bool(white["too_few"])) == (1, 0, True)
    overall = table.loc["all"]
    assert (overall["n"], overall["a_only"], overall["b_only"]) == (6, 1, 2)


def test_paired_chart_draws_both_versions_per_group_and_escapes_labels():
    rows = [
        {
            "attribute": "overall",
            "group": "all",
            "n": 40,
            "accuracy_a": 0.8,
            "ci_low_a": 0.7,
            "ci_high_a": 0.9,
            "accuracy_b": 0.9,
            "ci_low_b": 0.8,
            "ci_high_b": 0.95,
        },
        {
            "attribute": "race",
            "group": "<b>",
            "n": 12,
            "accuracy_a": 0.5,
            "ci_low_a": 0.3,
            "ci_high_a": 0.7,
            "accuracy_b": None,
        },
    ]
    svg = charts.paired_intervals_svg(rows, label_a="v1", label_b="v2")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<circle") == 2 + 3  # legend, then a dot per known accuracy
    assert "&lt;b&gt;" in svg and "<b>" not in svg


# --- shadow predictions, rounds and the comparison on real predictions ---------------------


@pytest.fixture
def two_trained_versions(filesystem_broker, coding_flow):
    """v1 trained and active with its predictions; v2 trained on the same faces, not active."""
    v1 = trained_version("shadow", faces=60, seed=3)
    study = v1.study
    admin = make_user(Role.ADMIN)
    run = version_activate(version=v1, user=admin)
    predictions_run_execute(run_id=run.pk)
    run = training_run_create(study=study, config={**TINY, "epochs": 2, "seed": 9}, enqueue=False)
    v2 = training_run_execute(run_id=run.pk).version
    return study, v1, v2, admin


def _hidden_truth(study) -> dict[int, dict]:
    return {
        known.face_id: {
            "truth": known.gender,
            "race": known.race,
            "age_band": known.age_band,
            "glasses": known.glasses,
            "quality": known.quality,
        }
        for known in KnownLabel.objects.filter(face__study=study, usage=KnownLabel.Usage.TRUTH)
    }


@pytest.mark.django_db
def test_shadow_predictions_then_a_round_and_a_paired_comparison(client, two_trained_versions):
    study, v1, v2, admin = two_trained_versions
    client.force_login(admin)
    card = reverse("modeling:version_detail", args=[study.slug, v2.number])
    assert "Predict all faces (shadow)" in client.get(card).content.decode()
    response = client.post(reverse("modeling:predict_shadow", args=[study.slug, v2.number]))
    assert response.status_code == 302 and response["Location"] == card
    run = PredictionRun.objects.get(version=v2)
    assert predictions_start(version=v2, user=admin) == run  # a second click: the same run
    assert predictions_run_execute(run_id=run.pk).status == "succeeded"
    v1.refresh_from_db()
    v2.refresh_from_db()
    assert v1.is_active and not v2.is_active
    faces = study.faces.exclude(coding_status="excluded").count()
    assert Prediction.objects.filter(version=v2).count() == faces
    page = client.get(card).content.decode()
    assert f'data-prediction-id="{run.pk}"' in page and f"{faces} / {faces}" in page

    # A round on the version that is not active, from the rounds page.
    rounds = reverse("modeling:validation_rounds", args=[study.slug])
    assert f'<option value="{v2.pk}">v{v2.number} · {faces} predicted' in client.get(
        rounds, {"version": v2.pk}
    ).content.decode().replace(" selected", "")
    response = client.post(rounds, {"version": v2.pk, "size": 10, "seed": 2, "min_per_group": 0})
    round = ValidationRound.objects.get()
    assert round.version == v2 and round.items.count() == 10
    v1.refresh_from_db()
    assert v1.is_active

    # Humans code the faces neither version trained on; the comparison pairs them.
    truth = _hidden_truth(study)
    trained = set(v1.training_run.dataset["face_ids"]) | set(v2.training_run.dataset["face_ids"])
    coded = [face_id for face_id in truth if face_id not in trained]
    code_faces(coded, truth)
    predicted = {
        version: dict(Prediction.objects.filter(version=version).values_list("face_id", "label"))
        for version in (v1, v2)
    }
    a_only = sum(predicted[v1][f] == truth[f]["truth"] != predicted[v2][f] for f in coded)
    b_only = sum(predicted[v2][f] == truth[f]["truth"] != predicted[v1][f] for f in coded)
    comparison = versions_compare(a=v1, b=v2)
    overall = comparison.paired_overall
    assert (overall["n"], overall["a_only"], overall["b_only"]) == (len(coded), a_only, b_only)
    table = np.array([[0, a_only], [b_only, 0]])
    assert overall["p_value"] == pytest.approx(mcnemar(table, exact=True).pvalue)
    html = client.get(
        reverse("modeling:version_compare", args=[study.slug]), {"a": v1.pk, "b": v2.pk}
    ).content.decode()
    assert 'data-testid="paired-table"' in html and html.count("<svg") == 1
    shown = "&lt; 0.001" if overall["p_value"] < 0.001 else f"{overall['p_value']:.3f}"
    assert f'data-testid="mcnemar-p">{shown}<' in html
    assert f"{a_only} / {b_only}" in html


@pytest.mark.django_db
def test_comparison_leaves_out_faces_a_version_trained_on_and_shows_cv(coding_flow):
    study = make_study()
    faces = make_plain_faces(study, 80)
    cv = {
        "cv": {
            "accuracy": 0.9,
            "by_subgroup": [{"attribute": "race", "group": "black", "n": 40, "accuracy": 0.8}],
        }
    }
    v1 = make_version(study, number=1, active=True, metrics=cv)
    v2 = make_version(study, number=2, training_face_ids=[f.pk for f in faces[:20]], metrics=cv)
    plant(faces, v1, seed=4, base_error=0.3)
    plant(faces, v2, seed=4, base_error=0.05, coded=False)  # same truth, its own errors
    comparison = versions_compare(a=v1, b=v2)
    assert comparison.trained_on == 20 and comparison.paired_overall["n"] == 60
    assert comparison.paired_overall["accuracy_b"] > comparison.paired_overall["accuracy_a"]
    black = next(r for r in comparison.rounds if (r["attribute"], r["group"]) == ("race", "black"))
    assert black["cv_a"]["accuracy"] == black["cv_b"]["accuracy"] == 0.8
    assert black["a"] is None  # no validation round yet


@pytest.mark.django_db
def test_comparison_without_shared_faces_says_so(client, coding_flow):
    study = make_study()
    faces = make_plain_faces(study, 20)
    v1 = make_version(study, number=1, active=True)
    v2 = make_version(study, number=2)
    plant(faces, v1, coded=False)
    client.force_login(make_user(Role.RESEARCHER, study=study))
    html = client.get(
        reverse("modeling:version_compare", args=[study.slug]), {"a": v1.pk, "b": v2.pk}
    ).content.decode()
    assert "No face has predictions from both versions and a human label yet" in html
    assert "<svg" not in html


@pytest.mark.django_db
def test_only_admins_start_shadow_predictions(client, filesystem_broker):
    study = make_study()
    make_plain_faces(study, 4)
    v1 = make_version(study, number=1, active=True)
    v2 = make_version(study, number=2)
    url = reverse("modeling:predict_shadow", args=[study.slug, v2.number])
    client.force_login(make_user(Role.RESEARCHER, study=study))
    assert client.post(url).status_code == 403
    card = client.get(reverse("modeling:version_detail", args=[study.slug, v2.number]))
    assert "Predict all faces (shadow)" not in card.content.decode()
    assert not PredictionRun.objects.exists()
    client.force_login(make_user(Role.ADMIN))
    assert client.post(url).status_code == 302
    run = PredictionRun.objects.get()
    assert (run.version, run.status, run.total) == (v2, "queued", 4)
    assert list(ModelVersion.objects.filter(is_active=True)) == [v1]


@pytest.mark.django_db
def test_rounds_page_lists_every_version_with_predictions_and_names_the_others(client, coding_flow):
    study = make_study()
    faces = make_plain_faces(study, 10)
    v1 = make_version(study, number=1, active=True)
    v2 = make_version(study, number=2)
    v3 = make_version(study, number=3)
    plant(faces, v2, coded=False)
    client.force_login(make_user(Role.RESEARCHER, study=study))
    html = client.get(reverse("modeling:validation_rounds", args=[study.slug])).content.decode()
    assert f'<option value="{v2.pk}">v2 · 10 predicted</option>' in html
    assert f'value="{v1.pk}"' not in html and f'value="{v3.pk}"' not in html
    unpredicted = html.split('data-testid="unpredicted"')[1].split("</p>")[0]
    assert ">v1<" in unpredicted and ">v3<" in unpredicted


@pytest.mark.django_db
def test_round_command_opens_a_round_on_a_version_that_is_not_active(coding_flow):
    study = make_study()
    faces = make_plain_faces(study, 30)
    v1 = make_version(study, number=1, active=True)
    v2 = make_version(study, number=2)
    plant(faces, v2, coded=False)
    out = io.StringIO()
    call_command(
        "validation_round",
        "--study",
        study.slug,
        "--version",
        "2",
        "--size",
        "12",
        "--min-per-group",
        "0",
        stdout=out,
    )
    round = ValidationRound.objects.get(pk=int(out.getvalue()))
    assert round.version == v2 and round.items.count() == 12
    v1.refresh_from_db()
    assert v1.is_active


@pytest.mark.django_db
def test_comparing_a_version_with_itself_or_another_study_is_refused(client):
    study, other = make_study(), make_study()
    v1 = make_version(study, number=1)
    with pytest.raises(ValueError, match=DIFFERENT_STUDIES):
        versions_compare(a=v1, b=make_version(other, number=1))
    client.force_login(make_user(Role.RESEARCHER, study=study))
    html = client.get(
        reverse("modeling:version_compare", args=[study.slug]), {"a": v1.pk, "b": v1.pk}
    ).content.decode()
    assert "Choose two different versions." in html
