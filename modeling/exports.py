"""Exports of a study's data as pandas frames, written as CSV or Parquet.

One function builds each frame (`export_frame`), so the command, the pages' download links
and the tests share the numbers. Text cells that a spreadsheet would run as a formula (first
character =, +, -, @, tab or carriage return) are prefixed with an apostrophe, in CSV and
Parquet alike.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json

import pandas as pd
from django.conf import settings
from django.db.models import Exists, OuterRef

from annotate.models import Consensus, Face, Study, Vote
from annotate.selectors.attributes import CODED_ATTRIBUTES, face_attributes_frame
from annotate.selectors.labels import face_labels
from modeling.models import CrossValidationPrediction, ModelVersion, Prediction, ValidationRound
from modeling.selectors.estimates import EstimateOptions, estimate_tables, version_active

WHAT_CHOICES = ("votes", "consensus", "predictions", "cv", "validation", "estimates")
FORMAT_CHOICES = ("csv", "parquet")
VALIDATION_COLUMNS = ["attribute", "group", "n", "accuracy", "ci_low", "ci_high", "flagged"]
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
UNKNOWN_WHAT = "Unknown export {what!r}; choose one of: {choices}."
UNKNOWN_FORMAT = "Unknown format {format!r}; choose one of: {choices}."
NO_VALIDATION_RESULTS = (
    "No validation round of {version} has results yet: open a round and compute its results."
)
NO_VERSION = "Study {study} has no model version yet: train one first."
NO_CV_PREDICTIONS = (
    "Version {version} of {study} has no stored cross-validation predictions (versions trained "
    "before they were stored have none): retrain to get them."
)
# Where a face comes from, and (with the coded attributes) who is pictured: the columns that
# identify a face in the per-face model exports.
PROVENANCE_COLUMNS = ["source_file", "query", "job", "country", "language", "rank"]
IDENTITY_COLUMNS = [*PROVENANCE_COLUMNS, *CODED_ATTRIBUTES]
CV_COLUMNS = [
    "face_id",
    "version",
    *PROVENANCE_COLUMNS,
    "label",
    "label_source",
    *CODED_ATTRIBUTES,
    "fold",
    "probability",
    "prediction",
]
# Faces per attributes query: an IN list of a whole large study would exceed the
# bind-parameter limits of SQLite (32,766) and PostgreSQL (65,535).
IDENTITY_CHUNK = 10_000
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}


class ExportError(ValueError):
    """The export cannot be produced; the message says why."""


def neutralize_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells starting with a formula character with an apostrophe."""
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column]):
            frame[column] = frame[column].map(
                lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_PREFIXES) else v
            )
    return frame


def coder_pseudonym(user_id: int, *, study: Study) -> str:
    """Stable per study, not reversible without the server's secret key."""
    digest = hmac.new(
        settings.SECRET_KEY.encode(), f"{study.slug}:{user_id}".encode(), hashlib.sha256
    )
    return "coder-" + digest.hexdigest()[:10]


VOTE_FIELDS = (
    "id",
    "face_id",
    "coder_id",
    "coder__username",
    "gender",
    "race",
    "age_band",
    "glasses",
    "quality",
    "seconds_taken",
    "created_at",
    "retracted_at",
    "non_blind",
    "excluded",  # the coder's votes were excluded from consensus by a researcher (kept)
)


def _votes(study: Study, pseudonymize: bool) -> pd.DataFrame:
    frame = pd.DataFrame(
        Vote.objects.filter(face__study=study)
        .annotate(excluded=Exists(study.coder_exclusions.filter(coder_id=OuterRef("coder_id"))))
        .order_by("id")
        .values_list(*VOTE_FIELDS),
        columns=list(VOTE_FIELDS),
    ).rename(columns={"id": "vote_id", "coder__username": "coder"})
    if pseudonymize:
        frame["coder_id"] = [coder_pseudonym(i, study=study) for i in frame["coder_id"]]
        frame = frame.drop(columns="coder")
    return frame


def _consensus(study: Study) -> pd.DataFrame:
    rows = Consensus.objects.filter(face__study=study).order_by("face_id")
    frame = pd.DataFrame(
        [
            {
                "face_id": c.face_id,
                "label": c.label,
                "status": c.status,
                "n_votes": c.n_votes,
                "agreement": c.agreement,
                "counts": json.dumps(c.counts, sort_keys=True),
            }
            for c in rows
        ],
        columns=["face_id", "label", "status", "n_votes", "agreement", "counts"],
    )
    # The label training, validation and estimates use (the study's aggregation method, an
    # adjudication first), beside the coding consensus; empty for faces without one.
    used = face_labels(study=study).frame.rename(
        columns={"label": "label_used", "source": "label_source", "confidence": "label_confidence"}
    )
    frame = frame.merge(used, left_on="face_id", right_index=True, how="left")
    frame["label_used"] = frame["label_used"].fillna("")
    frame["label_source"] = frame["label_source"].fillna("")
    attributes = face_attributes_frame(face_ids=frame["face_id"].tolist())
    return frame.merge(attributes, on="face_id", how="left")


def _face_identity(face_ids: list[int]) -> pd.DataFrame:
    """One row per face: IDENTITY_COLUMNS, attributes as face_attributes_frame gives them.

    The source file is the source image's original name, or for an imported crop (no source
    image) the crop's own original name.
    """
    ids = list(dict.fromkeys(face_ids))
    chunks = [ids[i : i + IDENTITY_CHUNK] for i in range(0, len(ids), IDENTITY_CHUNK)] or [[]]
    parts = []
    for chunk in chunks:
        names = pd.DataFrame(
            list(
                Face.objects.filter(pk__in=chunk).values_list(
                    "pk", "source_image__original_name", "original_name"
                )
            ),
            columns=["face_id", "image_name", "face_name"],
        )
        parts.append(face_attributes_frame(face_ids=chunk).merge(names, on="face_id"))
    frame = pd.concat(parts, ignore_index=True)
    frame["source_file"] = frame["image_name"].where(
        frame["image_name"].notna(), frame["face_name"]
    )
    return frame[["face_id", *IDENTITY_COLUMNS]]


def _predictions(study: Study, version: ModelVersion | None) -> pd.DataFrame:
    qs = Prediction.objects.filter(version__study=study)
    if version is not None:
        qs = qs.filter(version=version)
    frame = pd.DataFrame(
        list(
            qs.order_by("version__number", "face_id").values_list(
                "face_id", "version__number", "version_id", "probability", "label"
            )
        ),
        columns=["face_id", "version", "version_id", "probability", "label"],
    )
    frame = frame.merge(_face_identity(frame["face_id"].tolist()), on="face_id", how="left")
    first = ["face_id", "version", "version_id", "probability", "label", "job", "country", "query"]
    return frame[first + [c for c in IDENTITY_COLUMNS if c not in first]]


def _cv(study: Study, version: ModelVersion | None) -> pd.DataFrame:
    """Each training face's out-of-fold prediction of `version` (default: the active version,
    else the newest), with the columns that identify the face and its subgroups."""
    version = version or study.model_versions.order_by("-is_active", "-number").first()
    if version is None:
        raise ExportError(NO_VERSION.format(study=study.slug))
    frame = pd.DataFrame(
        list(
            CrossValidationPrediction.objects.filter(version=version)
            .order_by("face_id")
            .values_list("face_id", "fold", "label", "label_source", "probability", "predicted")
        ),
        columns=["face_id", "fold", "label", "label_source", "probability", "prediction"],
    )
    if frame.empty:
        raise ExportError(NO_CV_PREDICTIONS.format(version=version.number, study=study.slug))
    frame["version"] = version.number
    frame = frame.merge(_face_identity(frame["face_id"].tolist()), on="face_id", how="left")
    return frame[CV_COLUMNS]


def validation_frame(round: ValidationRound) -> pd.DataFrame:
    """The round's stored results, overall row first: one row per subgroup, with the
    version's cross-validation accuracy for the same group beside the human one."""
    results = round.results or {}
    overall = results.get("overall") or {}
    cv = {(r["attribute"], r["group"]): r["accuracy"] for r in results.get("cv_by_subgroup", [])}
    rows = [
        {
            "attribute": "overall",
            "group": "all",
            **{k: overall.get(k) for k in ("n", "accuracy", "ci_low", "ci_high")},
            "flagged": False,
            "too_few": False,
            "cv_accuracy": results.get("cv_overall"),
        }
    ]
    rows += [
        {
            **{k: row.get(k) for k in VALIDATION_COLUMNS},
            "too_few": row.get("too_few"),
            "p_value": row.get("p_value"),
            "p_adjusted": row.get("p_adjusted"),
            "cv_accuracy": cv.get((row["attribute"], row["group"])),
        }
        for row in results.get("by_subgroup", [])
    ]
    return pd.DataFrame(
        rows, columns=[*VALIDATION_COLUMNS, "too_few", "p_value", "p_adjusted", "cv_accuracy"]
    )


def _validation(study: Study, version: ModelVersion | None, round_id: int | None) -> pd.DataFrame:
    from modeling.selectors.validation import validation_round_latest

    if round_id is not None:
        round = ValidationRound.objects.filter(study=study, pk=round_id).first()
    else:
        version = version or version_active(study=study)
        round = validation_round_latest(version=version)
    if round is None or "overall" not in (round.results or {}):
        raise ExportError(NO_VALIDATION_RESULTS.format(version=version or study.slug))
    return validation_frame(round)


def export_frame(
    *,
    study: Study,
    what: str,
    version: ModelVersion | None = None,
    pseudonymize: bool = False,
    round_id: int | None = None,
    options: EstimateOptions | None = None,
) -> pd.DataFrame:
    """The frame for one export, formula characters neutralized."""
    if what not in WHAT_CHOICES:
        raise ExportError(UNKNOWN_WHAT.format(what=what, choices=", ".join(WHAT_CHOICES)))
    if what == "votes":
        frame = _votes(study, pseudonymize)
    elif what == "consensus":
        frame = _consensus(study)
    elif what == "predictions":
        frame = _predictions(study, version)
    elif what == "cv":
        frame = _cv(study, version)
    elif what == "validation":
        frame = _validation(study, version, round_id)
    else:
        version = version or version_active(study=study)
        frame = estimate_tables(version=version, options=options or EstimateOptions()).combined()
    return neutralize_formulas(frame)


def export_bytes(frame: pd.DataFrame, *, format: str) -> bytes:
    if format not in FORMAT_CHOICES:
        raise ExportError(UNKNOWN_FORMAT.format(format=format, choices=", ".join(FORMAT_CHOICES)))
    if format == "csv":
        return frame.to_csv(index=False).encode("utf-8")
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()
