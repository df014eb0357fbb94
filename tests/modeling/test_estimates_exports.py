"""Estimates from the database, the pages, exports round-tripping, the methods appendix."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from annotate.models import Face, FaceStatus, SourceImage
from annotate.roles import Role
from modeling.appendix import NO_ROUND, NO_VERSION
from modeling.estimates import NOTE_NO_VALIDATION, rogan_gladen
from modeling.exports import coder_pseudonym, export_frame, neutralize_formulas
from modeling.selectors.estimates import EstimateOptions, estimate_tables
from modeling.services.validation import validation_results_compute, validation_round_create
from modeling.templatetags.validation_format import pct
from tests.factories import make_plain_faces, make_study, make_user, votes_cast
from tests.modeling.validation_factories import code_faces, make_version, plant

pytestmark = pytest.mark.django_db

FAST = EstimateOptions(n_boot=300)


@pytest.fixture
def validated(coding_flow):
    """400 faces over 2 jobs × 2 countries, a version with planted errors, a complete round."""
    study = make_study()
    faces = make_plain_faces(study, 400)
    version = make_version(study, active=True)
    truth = plant(faces, version, coded=False, seed=8, female_share=0.35)
    round = validation_round_create(version=version, size=200, seed=1, min_per_group=0)
    code_faces(round.items.values_list("face_id", flat=True), truth)
    round = validation_results_compute(round_id=round.pk)
    researcher = make_user(Role.RESEARCHER, study=study)
    return study, version, truth, round, researcher


def _vote_on_an_open_face(study, coder) -> None:
    face = Face.objects.filter(study=study, coding_status=FaceStatus.OPEN).order_by("pk").first()
    votes_cast(face.pk, [{"gender": "male"}], coders=[coder])


def test_estimates_equal_an_independent_count_and_the_rogan_gladen_formula(validated):
    study, version, truth, round, _ = validated
    tables = estimate_tables(version=version, options=FAST)
    by_job = tables.tables["job"].set_index("job")
    frame = pd.DataFrame(
        [
            {"job": p.face.source_image.job, "female": p.label == "female"}
            for p in version.predictions.select_related("face__source_image")
        ]
    )
    expected = frame.groupby("job")["female"].mean()
    rates = round.results["error_rates"]
    for job, q in expected.items():
        row = by_job.loc[job]
        assert row["raw_share"] == pytest.approx(q)
        assert row["faces"] == (frame["job"] == job).sum()
        corrected = rogan_gladen(q, rates["sensitivity"], rates["specificity"])
        assert row["corrected_share"] == pytest.approx(np.clip(corrected, 0, 1))
        assert row["ci_low"] <= row["corrected_share"] <= row["ci_high"]
        assert row["consensus_faces"] > 0  # the validation faces carry consensus
    assert set(tables.tables) == {"job", "country", "query", "job × country"}
    assert len(tables.tables["job × country"]) == 4


def test_estimates_page_shows_the_figures_and_links_to_the_faces(client, validated):
    study, version, truth, round, researcher = validated
    client.force_login(researcher)
    response = client.get(reverse("modeling:estimates", args=[study.slug]))
    html = response.content.decode()
    assert response.status_code == 200
    table = estimate_tables(version=version, options=EstimateOptions()).tables["job"]
    for _, row in table.iterrows():
        assert pct(row["corrected_share"]) in html and pct(row["raw_share"]) in html
    gallery = reverse("modeling:gallery", args=[version.pk])
    assert f'href="{gallery}?job=nurse&amp;show=all"' in html
    faces = client.get(f"{gallery}?job=nurse&show=all")
    assert faces.content.decode().count('data-testid="face-card"') == 48  # first page


def test_estimates_csv_download_round_trips_with_the_page_numbers(client, validated):
    study, version, truth, round, researcher = validated
    client.force_login(researcher)
    url = reverse("modeling:export", args=[study.slug])
    response = client.get(url, {"what": "estimates", "format": "csv", "per": "image", "rank": "40"})
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    downloaded = pd.read_csv(io.BytesIO(response.content), keep_default_na=False, na_values=[""])
    page = estimate_tables(
        version=version, options=EstimateOptions(per="image", rank_cutoff=40)
    ).combined()
    numeric = ["images", "faces", "raw_share", "corrected_share", "ci_low", "ci_high"]
    pd.testing.assert_frame_equal(
        downloaded[numeric].astype(float), page[numeric].astype(float), check_exact=False, rtol=1e-9
    )
    assert downloaded["by"].tolist() == page["by"].tolist()
    parquet = client.get(
        url, {"what": "estimates", "format": "parquet", "per": "image", "rank": "40"}
    )
    back = pd.read_parquet(io.BytesIO(parquet.content))
    pd.testing.assert_frame_equal(back[numeric].astype(float), page[numeric].astype(float))


@pytest.mark.parametrize("what", ["votes", "consensus", "predictions", "validation", "estimates"])
@pytest.mark.parametrize("format", ["csv", "parquet"])
def test_export_command_writes_each_export_that_reads_back(tmp_path, validated, what, format):
    study, version, truth, round, researcher = validated
    out = tmp_path / f"x.{format}"
    call_command(
        "export",
        "--study",
        study.slug,
        "--what",
        what,
        "--format",
        format,
        "--out",
        str(out),
        stdout=io.StringIO(),
    )
    back = pd.read_csv(out) if format == "csv" else pd.read_parquet(out)
    expected = export_frame(study=study, what=what)
    assert len(back) == len(expected) > 0
    assert list(back.columns) == list(expected.columns)


def test_validation_export_has_the_page_numbers(client, validated, tmp_path):
    study, version, truth, round, researcher = validated
    out = tmp_path / "validation.csv"
    call_command(
        "export",
        "--study",
        study.slug,
        "--what",
        "validation",
        "--format",
        "csv",
        "--out",
        str(out),
        stdout=io.StringIO(),
    )
    back = pd.read_csv(out)
    assert list(back.columns[:7]) == [
        "attribute",
        "group",
        "n",
        "accuracy",
        "ci_low",
        "ci_high",
        "flagged",
    ]
    stored = pd.DataFrame(round.results["by_subgroup"])
    merged = back.iloc[1:].reset_index(drop=True)
    assert merged["n"].tolist() == stored["n"].tolist()
    np.testing.assert_allclose(merged["accuracy"], stored["accuracy"])
    np.testing.assert_allclose(merged["ci_low"], stored["ci_low"])
    assert merged["flagged"].tolist() == stored["flagged"].tolist()
    assert back.iloc[0]["accuracy"] == pytest.approx(round.results["overall"]["accuracy"])
    client.force_login(researcher)
    download = client.get(
        reverse("modeling:export", args=[study.slug]),
        {"what": "validation", "round": round.pk, "format": "csv"},
    )
    pd.testing.assert_frame_equal(pd.read_csv(io.BytesIO(download.content)), back)
    html = client.get(reverse("modeling:validation_round", args=[round.pk])).content.decode()
    for _, row in merged.head(8).iterrows():
        assert pct(row["accuracy"]) in html and pct(row["ci_high"]) in html


def test_formula_characters_in_text_fields_are_neutralized(client, validated):
    study, version, truth, round, researcher = validated
    SourceImage.objects.filter(study=study, job="nurse").update(job='=HYPERLINK("http://x")')
    evil = make_user(Role.CODER, username="@SUM(A1)", study=study)
    _vote_on_an_open_face(study, evil)
    client.force_login(researcher)
    csv = client.get(
        reverse("modeling:export", args=[study.slug]),
        {"what": "estimates", "format": "csv", "by": "job"},
    )
    jobs = pd.read_csv(io.BytesIO(csv.content))["job"].tolist()
    assert '\'=HYPERLINK("http://x")' in jobs and not any(j.startswith("=") for j in jobs)
    votes = export_frame(study=study, what="votes")
    assert votes.loc[votes["coder_id"] == evil.pk, "coder"].tolist() == ["'@SUM(A1)"]
    frame = neutralize_formulas(
        pd.DataFrame({"t": ["+1", "-2", "ok", "@x", "\tq"], "n": [-1, 2, 3, 4, 5]})
    )
    assert frame["t"].tolist() == ["'+1", "'-2", "ok", "'@x", "'\tq"] and frame["n"].tolist() == [
        -1,
        2,
        3,
        4,
        5,
    ]


def test_votes_export_pseudonymizes_coders_on_request(validated):
    study, version, truth, round, researcher = validated
    coder = make_user(Role.CODER, username="alice", study=study)
    _vote_on_an_open_face(study, coder)
    plain = export_frame(study=study, what="votes")
    hidden = export_frame(study=study, what="votes", pseudonymize=True)
    assert plain.loc[plain["coder_id"] == coder.pk, "coder"].tolist() == ["alice"]
    assert hidden["coder_id"].tolist() == [
        coder_pseudonym(pk, study=study) for pk in plain["coder_id"]
    ]
    assert "coder" not in hidden.columns and "alice" not in hidden.to_csv()
    client = Client()
    client.force_login(researcher)
    url = reverse("modeling:export", args=[study.slug])
    download = client.get(url, {"what": "votes", "format": "csv", "pseudonymize": "1"})
    assert b"alice" not in download.content
    assert coder_pseudonym(coder.pk, study=study).encode() in download.content


def test_undefined_correction_is_said_and_the_raw_share_shown(client, coding_flow):
    study = make_study()
    faces = make_plain_faces(study, 200)
    version = make_version(study, active=True)
    truth = plant(faces, version, coded=False, base_error=0.6, weak_error=0.6)
    round = validation_round_create(version=version, size=150, seed=1, min_per_group=0)
    code_faces(round.items.values_list("face_id", flat=True), truth)
    validation_results_compute(round_id=round.pk)
    client.force_login(make_user(Role.RESEARCHER, study=study))
    html = client.get(reverse("modeling:estimates", args=[study.slug])).content.decode()
    assert "the correction is undefined, raw shares are shown" in html
    table = estimate_tables(version=version, options=FAST).tables["job"]
    assert table["corrected_share"].isna().all() and table["raw_share"].notna().all()
    assert table["note"].str.startswith("correction undefined").all()


def test_without_validation_or_active_version_the_page_and_command_say_so(client, tmp_path):
    study = make_study()
    researcher = make_user(Role.RESEARCHER, study=study)
    client.force_login(researcher)
    html = client.get(reverse("modeling:estimates", args=[study.slug])).content.decode()
    assert "has no active model version" in html
    with pytest.raises(CommandError, match="no active model version"):
        call_command("estimates", "--study", study.slug)
    url = reverse("modeling:appendix", args=[study.slug])
    page = client.get(url)
    assert page.status_code == 200 and NO_VERSION in page.content.decode()
    markdown = client.get(url, {"format": "md"})
    assert markdown.status_code == 404 and markdown.content.decode() == NO_VERSION
    exports = reverse("modeling:exports", args=[study.slug])
    html = client.get(exports).content.decode()
    assert NO_VERSION in html and f"{url}?download=1" not in html
    faces = make_plain_faces(study, 40)
    version = make_version(study, active=True)
    html = client.get(exports).content.decode()
    assert NO_VERSION not in html and f"{url}?download=1" in html
    assert client.get(url, {"download": "1"}).status_code == 200
    plant(faces, version, coded=False)
    table = estimate_tables(version=version, options=FAST).tables["country"]
    assert (table["note"] == NOTE_NO_VALIDATION).all()
    out = tmp_path / "est.csv"
    call_command(
        "estimates",
        "--study",
        study.slug,
        "--by",
        "job,country",
        "--out",
        str(out),
        "--resamples",
        "200",
        stdout=io.StringIO(),
    )
    back = pd.read_csv(out)
    assert back["by"].unique().tolist() == ["job × country"] and len(back) == 4
    with pytest.raises(CommandError, match="Unknown grouping"):
        call_command("estimates", "--study", study.slug, "--by", "planet")
    bad = client.get(reverse("modeling:estimates", args=[study.slug]), {"rank": "0"})
    assert "at least 1" in bad.content.decode()
    appendix = client.get(reverse("modeling:appendix", args=[study.slug])).content.decode()
    assert "No validation round with results yet." in appendix
    assert NO_ROUND.format(number=version.number) in appendix


def test_bad_export_requests_are_refused_with_the_reason(client, validated):
    study, version, truth, round, researcher = validated
    client.force_login(researcher)
    url = reverse("modeling:export", args=[study.slug])
    assert client.get(url, {"what": "secrets", "format": "csv"}).status_code == 400
    response = client.get(url, {"what": "votes", "format": "xlsx"})
    assert response.status_code == 400 and "csv, parquet" in response.content.decode()
    client.force_login(make_user(Role.CODER, study=study))
    assert client.get(url, {"what": "votes", "format": "csv"}).status_code == 403


def test_methods_appendix_in_markdown_and_json(client, validated, tmp_path):
    study, version, truth, round, researcher = validated
    client.force_login(researcher)
    url = reverse("modeling:appendix", args=[study.slug])
    data = json.loads(client.get(url, {"format": "json"}).content)
    assert data["human_validation"]["round"] == round.pk
    assert data["human_validation"]["overall"]["accuracy"] == pytest.approx(
        round.results["overall"]["accuracy"]
    )
    assert (
        data["model"]["backbone"] == "resnet18"
        and "Rogan–Gladen" in data["estimator"]["description"]
    )
    markdown = client.get(url, {"format": "md"}).content.decode()
    assert (
        markdown.startswith("# Methods appendix")
        and pct(round.results["overall"]["accuracy"]) in markdown
    )
    assert "Benjamini–Hochberg" in markdown and "adjusted p" in markdown
    download = client.get(url, {"download": "1"})
    assert download["Content-Disposition"].endswith('-methods.md"')
    assert download.content.decode() == markdown
    page = client.get(url).content.decode()
    assert page.lstrip().startswith("<!DOCTYPE html>") or "<html" in page
    assert pct(round.results["overall"]["accuracy"]) in page
    assert 'data-testid="appendix-table"' in page and "Benjamini–Hochberg" in page
    out = tmp_path / "appendix.json"
    call_command(
        "methods_appendix",
        "--study",
        study.slug,
        "--format",
        "json",
        "--out",
        str(out),
        stdout=io.StringIO(),
    )
    assert json.loads(out.read_text())["human_validation"]["round"] == round.pk


def test_error_rates_come_from_the_proportionally_drawn_faces(coding_flow):
    from modeling.sampling import MINIMUM_PREFIX
    from modeling.selectors.estimates import SAMPLE_PROPORTIONAL, estimates_validation

    study = make_study()
    faces = make_plain_faces(study, 800)
    version = make_version(study, active=True)
    truth = plant(faces, version, coded=False, seed=2, weak_error=0.5)
    round = validation_round_create(version=version, size=400, seed=3, min_per_group=60)
    code_faces(round.items.values_list("face_id", flat=True), truth)
    round = validation_results_compute(round_id=round.pk)
    minimum = round.items.filter(stratum__startswith=MINIMUM_PREFIX)
    assert round.results["sample"]["minimum"] == minimum.count() > 0
    basis = estimates_validation(version=version)
    assert basis.sample == SAMPLE_PROPORTIONAL
    proportional = round.items.exclude(stratum__startswith=MINIMUM_PREFIX).values_list(
        "face_id", flat=True
    )
    tp = sum(
        truth[i]["truth"] == "female" and truth[i]["predicted"] == "female" for i in proportional
    )
    assert basis.rates.tp == tp and basis.rates.n == len(proportional)


def test_methods_appendix_reports_agreement_as_the_agreement_page_does():
    from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_kappa

    from modeling.appendix import appendix_markdown, methods_appendix
    from tests.factories import bare_faces, faces_vote, quick_users
    from tests.modeling.validation_factories import make_version

    study = make_study()
    faces = bare_faces(study, 40)
    coders = quick_users(study, 3)
    rng = np.random.default_rng(4)
    table, answers = [], {}
    for face in faces:
        labels = rng.choice(["female", "male", "cant_tell"], size=3, p=[0.6, 0.35, 0.05])
        answers[face.pk] = [{"gender": str(label)} for label in labels]
        table.append([int((labels == c).sum()) for c in ("female", "male", "cant_tell")])
    faces_vote(answers, coders=coders)
    appendix = methods_appendix(study=study, version=make_version(study))
    coding = appendix["coding"]
    assert coding["fleiss_kappa"] == pytest.approx(statsmodels_kappa(np.array(table)))
    assert coding["fleiss_kappa_faces"] == 40
    agreeing = [sum(n * (n - 1) for n in row) / 6 for row in table]
    assert coding["percent_agreement"] == pytest.approx(np.mean(agreeing))
    assert -1 <= coding["krippendorff_alpha"] <= 1
    assert f"Fleiss' κ {coding['fleiss_kappa']:.3f}" in appendix_markdown(appendix)
