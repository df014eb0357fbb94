"""Stored summaries of a study's researcher pages: the one writer of StudySummary.

The study page, the home page and the agreement page show figures that read every face or
every vote of a study (counts by coding status, live votes, agreement). Computed on each view
they grow with the study; here they are computed by the same selectors, stored with the time
they were read (`computed_at`) and shown "as of" that time, so a page costs one indexed read
at any size.

Freshness: a summary younger than `settings.FACET_SUMMARY_MAX_AGE_S` is shown as it is. An
older one is shown too, and a refresh is requested: at most one `summary_refresh` task per
summary is waiting at a time (`requested_at`), so many views of a busy study enqueue one task.
Where no worker answers within the same age (a refresh requested longer ago than that and
still not done), or where no summary exists yet, the page computes the figures itself. With
the age set to 0 every view computes them (exact, and as slow as the study is large).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from annotate.models import Study, StudySummary
from annotate.selectors.agreement import (
    AgreementReport,
    agreement_report,
    report_figures,
    report_from_figures,
)
from annotate.selectors.studies import StudyOverview, study_overview

logger = logging.getLogger(__name__)

Kind = StudySummary.Kind


@dataclass(frozen=True)
class SummaryKey:
    """Which summary: the overview, or the agreement on one question (optionally one batch)."""

    study_id: int
    kind: str
    question: str = ""
    batch_id: int | None = None

    def rows(self) -> QuerySet[StudySummary]:
        return StudySummary.objects.filter(
            study_id=self.study_id, kind=self.kind, question=self.question, batch_id=self.batch_id
        )


def _now() -> datetime:
    return timezone.now()


def _compute(key: SummaryKey, study: Study) -> dict:
    if key.kind == Kind.OVERVIEW:
        return study_overview(study=study).figures()
    return report_figures(
        agreement_report(study=study, batch_id=key.batch_id, question=key.question)
    )


def summary_refresh(key: SummaryKey) -> StudySummary | None:
    """Compute the summary's figures from the rows now and store them (the time is when the
    reading started, so "as of" never claims more than was read); None if the study is gone."""
    started = _now()
    study = Study.objects.filter(pk=key.study_id).first()
    if study is None:
        return None
    figures = _compute(key, study)
    summary, _ = StudySummary.objects.update_or_create(
        study_id=key.study_id,
        kind=key.kind,
        question=key.question,
        batch_id=key.batch_id,
        defaults={"figures": figures, "computed_at": started},
    )
    return summary


def study_summaries_refresh(*, study_id: int) -> int:
    """Refresh every summary the study has (and its overview); returns how many. What a worker
    does for a study all at once, e.g. after a bulk change."""
    keys = {SummaryKey(study_id, Kind.OVERVIEW)} | {
        SummaryKey(study_id, kind, question, batch_id)
        for kind, question, batch_id in StudySummary.objects.filter(study_id=study_id).values_list(
            "kind", "question", "batch_id"
        )
    }
    keys.add(SummaryKey(study_id, Kind.AGREEMENT, "gender"))
    for key in keys:
        summary_refresh(key)
    return len(keys)


def _refresh_request(summary: StudySummary, key: SummaryKey, now: datetime) -> None:
    """Ask a worker to refresh `summary` unless a request is already waiting (debounce)."""
    from annotate.tasks import summary_refresh_task

    asked = (
        StudySummary.objects.filter(pk=summary.pk)
        .filter(Q(requested_at__isnull=True) | Q(requested_at__lte=summary.computed_at))
        .update(requested_at=now)
    )
    if asked:
        transaction.on_commit(
            lambda: summary_refresh_task.delay(key.study_id, key.kind, key.question, key.batch_id),
            robust=True,  # a broker that is down is logged; the page refreshes it later
        )


def _refresh_now(key: SummaryKey) -> StudySummary:
    summary = summary_refresh(key)
    if summary is None:
        raise Study.DoesNotExist(f"study {key.study_id} was deleted")
    return summary


def summary_read(key: SummaryKey) -> StudySummary:
    """The summary to show now, refreshed first where needed (see the module's docstring)."""
    now = _now()
    max_age = timedelta(seconds=settings.FACET_SUMMARY_MAX_AGE_S)
    summary = key.rows().first()
    if summary is None or not max_age:
        return _refresh_now(key)
    if now - summary.computed_at <= max_age:
        return summary
    requested = summary.requested_at
    if requested is not None and requested > summary.computed_at and now - requested > max_age:
        logger.warning(
            "summary %s: no worker refreshed it in %s; computed by the page", key, max_age
        )
        return _refresh_now(key)
    _refresh_request(summary, key, now)
    return summary


def overview_read(*, study: Study) -> StudyOverview:
    summary = summary_read(SummaryKey(study.pk, Kind.OVERVIEW))
    return StudyOverview.from_figures(study, summary.figures, as_of=summary.computed_at)


def agreement_read(*, study: Study, batch_id: int | None, question: str) -> AgreementReport:
    """The agreement report of the study (or of one of its import batches) on `question`."""
    batch = study.imports.filter(pk=batch_id).first() if batch_id is not None else None
    if batch_id is not None and batch is None:
        # Not a batch of this study: nothing to store, and no faces to read.
        return agreement_report(study=study, batch_id=batch_id, question=question)
    key = SummaryKey(study.pk, Kind.AGREEMENT, question, batch_id)
    summary = summary_read(key)
    if summary.figures.get("allow_admin_votes") != study.allow_admin_votes:
        # The setting changed since: the stored figures counted other votes, so they are not
        # merely old but answer another question (whoever changed it, page or Django admin).
        summary = _refresh_now(key)
    return report_from_figures(
        study=study, batch=batch, figures=summary.figures, as_of=summary.computed_at
    )
