"""Stored summaries of the researcher pages (annotate.services.summaries): they hold what a
fresh count of the rows says after every path that changes them, they are shown as of their
time, and a stale one is refreshed by one task however often the page is opened."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from django.template import engines
from django.urls import reverse
from django.utils import timezone

from annotate.assignment import face_votes_reset
from annotate.consensus import face_adjudicate
from annotate.models import Face, FaceStatus, SourceImage, Study, StudySummary, Vote
from annotate.roles import Role
from annotate.selectors.agreement import agreement_report, report_figures, report_from_figures
from annotate.selectors.waiting import faces_waiting
from annotate.services import summaries
from annotate.services.coding import vote_undo
from annotate.services.gold import coder_exclude, coder_include
from annotate.services.ingest_faces import faces_import
from annotate.services.simulation import coders_simulate
from annotate.services.summaries import SummaryKey, overview_read, summary_refresh
from tests.annotate.coding_helpers import vote_next
from tests.factories import bare_faces, jpeg_bytes, make_study, make_user, quick_users

pytestmark = pytest.mark.django_db

OVERVIEW = StudySummary.Kind.OVERVIEW


def fresh_counts(study: Study) -> dict[str, int]:
    """The overview's figures counted from the rows directly, one COUNT each."""
    faces = Face.objects.filter(study=study)
    return {
        "images": SourceImage.objects.filter(study=study).count(),
        "faces": faces.count(),
        "faces_open": faces.filter(coding_status=FaceStatus.OPEN).count(),
        "faces_complete": faces.filter(coding_status=FaceStatus.COMPLETE).count(),
        "faces_adjudication": faces.filter(coding_status=FaceStatus.ADJUDICATION).count(),
        "faces_excluded": faces.filter(coding_status=FaceStatus.EXCLUDED).count(),
        "faces_waiting": faces.filter(consensus__status__in=("escalated", "adjudication")).count(),
        "votes": Vote.objects.filter(face__study=study, retracted_at__isnull=True).count(),
    }


def stored(study: Study) -> dict[str, int]:
    summary = summary_refresh(SummaryKey(study.pk, OVERVIEW))
    assert summary is not None
    return summary.figures


def test_overview_matches_a_fresh_count_after_every_path_that_changes_it(tmp_path):
    study = make_study(votes_per_face=3, escalation_wait_minutes=0)
    faces = bare_faces(study, 4)
    coders = quick_users(study, 4)
    researcher = make_user(Role.RESEARCHER, study=study)
    assert stored(study) == fresh_counts(study)

    for coder in coders[:3]:  # votes: two faces agreed, the rest open
        vote_next(study, coder, "female")
        vote_next(study, coder, "female")
    assert stored(study) == fresh_counts(study)
    assert stored(study)["faces_complete"] == 2

    vote_undo(study=study, coder=coders[2])  # undo reopens a face
    assert stored(study) == fresh_counts(study)
    assert stored(study)["faces_complete"] == 1
    vote_next(study, coders[2], "female")  # the undone face again

    for coder, gender in zip(coders[:3], ("female", "male", "cant_tell"), strict=True):
        vote_next(study, coder, gender)  # a three-way split goes to a researcher
    assert stored(study) == fresh_counts(study)
    split = Face.objects.get(study=study, coding_status=FaceStatus.ADJUDICATION)
    assert stored(study)["faces_waiting"] == 1

    face_adjudicate(face=split, researcher=researcher, label="male")  # adjudication
    assert stored(study) == fresh_counts(study)

    face_votes_reset(face=faces[0], reason="label error")  # reset retracts the votes
    assert stored(study) == fresh_counts(study)

    coder_exclude(study=study, coder=coders[0], by=researcher)  # exclusion reopens faces
    assert stored(study) == fresh_counts(study)
    coder_include(study=study, coder=coders[0], by=researcher)
    assert stored(study) == fresh_counts(study)

    folder = tmp_path / "crops"  # an import creates complete faces
    folder.mkdir()
    for i in range(2):
        (folder / f"c{i}.jpg").write_bytes(jpeg_bytes(i))
    faces_import(
        study=study,
        folder=folder,
        labels=b"path,gender\nc0.jpg,female\nc1.jpg,male\n",
        labels_name="labels.csv",
    )
    assert stored(study) == fresh_counts(study)
    assert stored(study)["faces"] == 4 + Face.objects.filter(study=study, origin="imported").count()

    study_id = study.pk
    study.delete()  # the summaries go with the study
    assert not StudySummary.objects.filter(study_id=study_id).exists()
    assert summary_refresh(SummaryKey(study_id, OVERVIEW)) is None


@pytest.fixture
def stored_pages(settings, monkeypatch):
    """Production's freshness rule (figures up to 30 s old) with a clock the test moves, and
    the refresh tasks sent recorded instead of queued."""
    settings.FACET_SUMMARY_MAX_AGE_S = 30
    clock = {"now": timezone.now()}
    monkeypatch.setattr(summaries, "_now", lambda: clock["now"])
    sent: list[tuple] = []
    monkeypatch.setattr(
        "annotate.tasks.summary_refresh_task.delay", lambda *args: sent.append(args)
    )
    return clock, sent


def test_study_page_shows_stored_counts_as_of_their_time_and_one_task_refreshes_them(
    client, stored_pages, django_capture_on_commit_callbacks
):
    clock, sent = stored_pages
    study = make_study()
    bare_faces(study, 3)
    coders = quick_users(study, 3)
    client.force_login(make_user(Role.RESEARCHER, study=study))
    url = reverse("annotate:study_detail", args=[study.slug])

    def votes_shown() -> int:
        with django_capture_on_commit_callbacks(execute=True):
            page = client.get(url).content.decode()
        assert 'data-testid="overview-as-of"' in page
        return int(page.split("<dt>Votes</dt><dd>")[1].split("<")[0])

    assert votes_shown() == 0  # none stored yet: computed by the page
    vote_next(study, coders[0])
    assert votes_shown() == 0 and sent == []  # young enough: shown as it is
    clock["now"] += timedelta(seconds=31)
    assert votes_shown() == 0  # stale: still shown, and a refresh is asked for once
    assert votes_shown() == 0
    assert sent == [(study.pk, OVERVIEW, "", None)]

    from annotate.tasks import summary_refresh_task

    summary_refresh_task(*sent[0])  # what the worker does
    assert votes_shown() == 1
    vote_next(study, coders[1])
    clock["now"] += timedelta(seconds=31)
    assert votes_shown() == 1 and len(sent) == 2  # a new request once the last was served


def test_a_refresh_no_worker_served_is_done_by_the_page(
    stored_pages, django_capture_on_commit_callbacks
):
    clock, sent = stored_pages
    study = make_study()
    bare_faces(study, 2)
    (coder,) = quick_users(study, 1)
    assert overview_read(study=study).votes == 0
    vote_next(study, coder)
    clock["now"] += timedelta(seconds=31)
    with django_capture_on_commit_callbacks(execute=True):
        assert overview_read(study=study).votes == 0
    assert len(sent) == 1
    clock["now"] += timedelta(seconds=31)  # the request is older than the age: no worker
    overview = overview_read(study=study)
    assert overview.votes == 1 and overview.as_of == clock["now"]


def test_agreement_page_reads_its_stored_report_and_a_coder_is_read_now(client, stored_pages):
    clock, sent = stored_pages
    study = make_study(attributes_asked=["glasses"])
    bare_faces(study, 6)
    coders_simulate(study=study, coders=3, accuracy=0.8, seed=2)
    client.force_login(make_user(Role.RESEARCHER, study=study))
    url = reverse("annotate:agreement", args=[study.slug])
    page = client.get(f"{url}?question=glasses").content.decode()
    assert 'data-testid="agreement-as-of"' in page
    assert StudySummary.objects.filter(study=study, question="glasses").count() == 1
    coder_id = agreement_report(study=study).coders[0].coder_id
    page = client.get(f"{url}?coder={coder_id}").content.decode()
    assert 'data-testid="confusion"' in page  # one coder's confusion: read now


@pytest.mark.parametrize("aggregation", ["majority", "dawid_skene"])
def test_a_stored_report_reads_back_as_the_report_it_was(aggregation):
    study = make_study(aggregation=aggregation)
    bare_faces(study, 12)
    coders_simulate(study=study, coders=4, accuracy=0.7, seed=9)
    report = agreement_report(study=study)
    back = report_from_figures(
        study=study, batch=None, figures=report_figures(report), as_of=timezone.now()
    )
    for name in ("n_votes", "n_items", "percent_agreement", "alpha", "coders", "statuses"):
        assert getattr(back, name) == getattr(report, name), name
    assert back.kappa == report.kappa or (
        math.isnan(back.kappa.kappa) and math.isnan(report.kappa.kappa)
    )
    assert back.labels_by_method == report.labels_by_method
    assert back.bars == report.bars and back.chart_height == report.chart_height
    assert back.convergence == report.convergence
    assert len(back.estimated_confusion) == len(report.estimated_confusion)
    for a, b in zip(back.estimated_confusion, report.estimated_confusion, strict=True):
        assert (a.coder_id, a.votes, a.accuracy) == (b.coder_id, b.votes, b.accuracy)
        assert list(a.percent.index) == [str(i) for i in b.percent.index]
        assert list(a.percent.columns) == [str(c) for c in b.percent.columns]
        assert a.percent.to_numpy().ravel().tolist() == pytest.approx(
            b.percent.to_numpy().ravel().tolist()
        )


def test_waiting_faces_take_a_known_total_and_list_the_longest_waiting_first():
    study = make_study(escalation_wait_minutes=0)
    faces = bare_faces(study, 3)
    coders = quick_users(study, 3)
    for _ in faces:
        for coder, gender in zip(coders, ("female", "male", "cant_tell"), strict=True):
            vote_next(study, coder, gender)
    waiting = faces_waiting(study=study, limit=2, total=7)
    assert [w.face.pk for w in waiting.faces] == [faces[0].pk, faces[1].pk]
    assert (waiting.total, waiting.more) == (7, 5)
    assert faces_waiting(study=study, limit=2).total == 3  # counted when not known


def test_the_web_process_compiles_the_templates_before_its_first_request():
    from config.warmup import web_process_warm

    web_process_warm()
    loader = engines["django"].engine.template_loaders[0]
    cached = {key.split("-")[0] for key in loader.get_template_cache}
    assert {"annotate/study_detail.html", "annotate/agreement.html"} <= cached
