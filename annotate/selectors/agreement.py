"""Reads for the researcher's agreement page: vote frames and the figures built from them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime

import pandas as pd
from django.contrib.auth import get_user_model

from annotate import aggregation
from annotate.models import Consensus, ConsensusStatus, FaceStatus, ImportBatch, Study, Vote
from annotate.selectors.labels import QUESTIONS as QUESTIONS  # the page's question picker
from annotate.selectors.labels import UNKNOWN_QUESTION, face_labels


@dataclass(frozen=True)
class AgreementVotes:
    """The votes agreement is measured on, and how many non-blind votes were left out."""

    frame: pd.DataFrame  # item, coder, label
    non_blind_left_out: int
    excluded_left_out: int = 0  # live votes of coders excluded from the study


def agreement_votes(
    *, study: Study, batch_id: int | None = None, question: str = "gender"
) -> AgreementVotes:
    """Live votes of a study (or of the faces from one import batch) as item, coder, label.

    Agreement measures independent, blind coders, so non-blind votes (cast by admins, who
    see other votes and the model's predictions) are left out unless the study allows them.
    Consensus and the labels used downstream still count every live vote. Votes of coders a
    researcher excluded from the study count nowhere (Vote.objects.counted).
    """
    if question not in QUESTIONS:
        raise ValueError(UNKNOWN_QUESTION.format(question=question, choices=", ".join(QUESTIONS)))
    votes = Vote.objects.filter(face__study=study, retracted_at__isnull=True).exclude(
        **{question: ""}
    )
    if batch_id is not None:
        votes = votes.filter(face__source_image__batch_id=batch_id)
    live = votes.count()
    votes = votes.counted()
    excluded_left_out = live - votes.count()
    left_out = 0
    if not study.allow_admin_votes:
        left_out = votes.filter(non_blind=True).count()
        votes = votes.filter(non_blind=False)
    rows = votes.values_list("face_id", "coder_id", question)
    return AgreementVotes(
        pd.DataFrame(list(rows), columns=["item", "coder", "label"]), left_out, excluded_left_out
    )


@dataclass(frozen=True)
class CoderRow:
    coder_id: int
    name: str
    votes: int
    compared: int
    agreement: float | None

    @property
    def percent(self) -> str:
        return "–" if self.agreement is None else f"{100 * self.agreement:.1f}"


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    y: int
    width: float


@dataclass(frozen=True)
class EstimatedConfusion:
    """One coder's Dawid–Skene confusion: rows the estimated true class, columns what the
    coder said, cells P(said | true) in percent.
    """

    coder_id: int
    name: str
    votes: int
    accuracy: float
    percent: pd.DataFrame

    @property
    def accuracy_percent(self) -> str:
        return f"{100 * self.accuracy:.1f}"


@dataclass
class AgreementReport:
    study: Study
    question: str
    batch: ImportBatch | None
    n_votes: int
    n_items: int
    percent_agreement: float | None
    kappa: aggregation.Kappa | None
    alpha: float | None
    coders: list[CoderRow]
    selected_coder: CoderRow | None = None
    confusion: pd.DataFrame | None = None
    bars: list[Bar] = field(default_factory=list)
    chart_height: int = 0
    labels_by_method: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    # Dawid–Skene studies: the fit the downstream labels come from (all of the study's votes).
    convergence: aggregation.Convergence | None = None
    estimated_confusion: list[EstimatedConfusion] = field(default_factory=list)
    non_blind_left_out: int = 0
    excluded_left_out: int = 0
    # When the votes were read, for a report stored by annotate.services.summaries.
    as_of: datetime | None = None


def _finite(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


CHART_WIDTH = 360
BAR_HEIGHT = 22


def agreement_report(
    *,
    study: Study,
    batch_id: int | None = None,
    coder_id: int | None = None,
    question: str = "gender",
) -> AgreementReport:
    votes = agreement_votes(study=study, batch_id=batch_id, question=question)
    frame = votes.frame
    batch = study.imports.filter(pk=batch_id).first() if batch_id is not None else None
    names = dict(
        get_user_model()
        .objects.filter(pk__in=frame["coder"].unique().tolist())
        .values_list("pk", "username")
    )
    if frame.empty:
        return AgreementReport(
            study,
            question,
            batch,
            0,
            0,
            None,
            None,
            None,
            [],
            non_blind_left_out=votes.non_blind_left_out,
            excluded_left_out=votes.excluded_left_out,
        )
    per_coder = aggregation.coder_agreement(frame)
    coders = [
        CoderRow(
            int(cid),
            names.get(int(cid), str(cid)),
            int(row.votes),
            int(row.compared),
            _finite(float(row.agreement)),
        )
        for cid, row in per_coder.iterrows()
    ]
    report = AgreementReport(
        study=study,
        question=question,
        batch=batch,
        n_votes=len(frame),
        n_items=int(frame["item"].nunique()),
        percent_agreement=_finite(aggregation.percent_agreement(frame)),
        kappa=aggregation.fleiss_kappa(frame),
        alpha=_finite(aggregation.krippendorff_alpha_nominal(frame)),
        coders=coders,
        non_blind_left_out=votes.non_blind_left_out,
        excluded_left_out=votes.excluded_left_out,
    )
    _chart(report)
    if coder_id is not None:
        report.selected_coder = next((r for r in coders if r.coder_id == coder_id), None)
        if report.selected_coder is not None:
            report.confusion = aggregation.coder_confusion(frame, coder_id)
    if question == "gender":
        labelled = face_labels(study=study)
        labels = labelled.frame.loc[labelled.frame.index.isin(frame["item"]), "label"]
        report.labels_by_method = {
            (str(k) or "tie"): int(v) for k, v in labels.value_counts().sort_index().items()
        }
        if labelled.fit is not None:
            report.convergence = labelled.fit.convergence
            report.estimated_confusion = _estimated_confusion(labelled.fit)
        report.statuses = {
            ConsensusStatus(s).label: n
            for s, n in pd.Series(
                Consensus.objects.filter(face__study=study).values_list("status", flat=True)
            )
            .value_counts()
            .items()
        }
    return report


def _chart(report: AgreementReport) -> None:
    rated = [(r.name, r.agreement) for r in report.coders if r.agreement is not None]
    report.bars = [
        Bar(name, agreement, i * (BAR_HEIGHT + 6), CHART_WIDTH * agreement)
        for i, (name, agreement) in enumerate(rated)
    ]
    report.chart_height = max(1, len(report.bars)) * (BAR_HEIGHT + 6)


def _number(value: float) -> float | None:
    """JSON has no NaN (and PostgreSQL's jsonb refuses it): stored as null."""
    return None if math.isnan(value) else float(value)


def _frame_figures(frame: pd.DataFrame) -> dict:
    return {
        "index": [str(i) for i in frame.index],
        "columns": [str(c) for c in frame.columns],
        "data": [[_number(v) for v in row] for row in frame.to_numpy(dtype=float)],
    }


def _frame_from(figures: dict) -> pd.DataFrame:
    data = [[math.nan if v is None else v for v in row] for row in figures["data"]]
    return pd.DataFrame(data, index=figures["index"], columns=figures["columns"])


def report_figures(report: AgreementReport) -> dict:
    """The whole-study (or whole-batch) part of a report as JSON, for
    annotate.services.summaries to store; `report_from_figures` reads it back. A selected
    coder's confusion is not part of it (the page computes that one when asked)."""
    kappa = report.kappa
    return {
        "question": report.question,
        "n_votes": report.n_votes,
        "n_items": report.n_items,
        "percent_agreement": report.percent_agreement,
        "kappa": None if kappa is None else {**asdict(kappa), "kappa": _number(kappa.kappa)},
        "alpha": report.alpha,
        "coders": [asdict(row) for row in report.coders],
        "labels_by_method": report.labels_by_method,
        "statuses": report.statuses,
        "convergence": None if report.convergence is None else asdict(report.convergence),
        "estimated_confusion": [
            {
                **{k: getattr(e, k) for k in ("coder_id", "name", "votes", "accuracy")},
                "percent": _frame_figures(e.percent),
            }
            for e in report.estimated_confusion
        ],
        "non_blind_left_out": report.non_blind_left_out,
        "excluded_left_out": report.excluded_left_out,
        # Which votes were counted: a change of the setting makes these figures another report.
        "allow_admin_votes": report.study.allow_admin_votes,
    }


def report_from_figures(
    *, study: Study, batch: ImportBatch | None, figures: dict, as_of: datetime
) -> AgreementReport:
    kappa = figures["kappa"]
    if kappa is not None and kappa["kappa"] is None:
        kappa = {**kappa, "kappa": math.nan}
    report = AgreementReport(
        study=study,
        question=figures["question"],
        batch=batch,
        n_votes=figures["n_votes"],
        n_items=figures["n_items"],
        percent_agreement=figures["percent_agreement"],
        kappa=None if kappa is None else aggregation.Kappa(**kappa),
        alpha=figures["alpha"],
        coders=[CoderRow(**row) for row in figures["coders"]],
        labels_by_method=figures["labels_by_method"],
        statuses=figures["statuses"],
        convergence=(
            None
            if figures["convergence"] is None
            else aggregation.Convergence(**figures["convergence"])
        ),
        estimated_confusion=[
            EstimatedConfusion(**{**e, "percent": _frame_from(e["percent"])})
            for e in figures["estimated_confusion"]
        ],
        non_blind_left_out=figures["non_blind_left_out"],
        excluded_left_out=figures["excluded_left_out"],
        as_of=as_of,
    )
    _chart(report)
    return report


def _estimated_confusion(fit: aggregation.DawidSkeneFit) -> list[EstimatedConfusion]:
    coder_ids = [int(c) for c in fit.coders]
    names = dict(get_user_model().objects.filter(pk__in=coder_ids).values_list("pk", "username"))
    accuracy = fit.coder_accuracy()
    return [
        EstimatedConfusion(
            coder_id=cid,
            name=names.get(cid, str(cid)),
            votes=int(fit.coder_votes[cid]),
            accuracy=float(accuracy[cid]),
            percent=100 * fit.coder_confusion(cid),
        )
        for cid in coder_ids
    ]


def adjudication_queue(*, study: Study, limit: int = 200):
    """Faces waiting for a researcher, oldest first, with their consensus counts."""
    return (
        study.faces.filter(coding_status=FaceStatus.ADJUDICATION)
        .select_related("consensus")
        .order_by("pk")[:limit]
    )


def recent_consensus(*, study: Study, limit: int = 30):
    return (
        Consensus.objects.filter(study=study).select_related("face").order_by("-updated_at")[:limit]
    )
