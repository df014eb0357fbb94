"""Reads for estimates: the version's faces, the study's images, the validation error rates,
and the estimate tables built from them by modeling.estimates (pure).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from annotate.models import ConsensusStatus, FaceStatus, SourceImage, Study
from annotate.selectors.labels import face_labels
from modeling import estimates
from modeling.models import ModelVersion, Prediction, ValidationRound
from modeling.sampling import MINIMUM_PREFIX
from modeling.selectors.triage import triage_not_face_ids
from modeling.selectors.validation import validation_round_frame, validation_round_latest

GROUPINGS: dict[str, tuple[str, ...]] = {
    "job": ("job",),
    "country": ("country",),
    "query": ("query",),
    "job × country": ("job", "country"),
}
BY_CHOICES = ("job", "country", "query", "language")
DEFAULT_SEED = 20240601
NO_ACTIVE_VERSION = "Study {study} has no active model version: train and activate one first."
UNKNOWN_BY = "Unknown grouping column(s) {names}; choose from: {choices}."


class EstimatesError(ValueError):
    """The estimates cannot be computed; the message says why."""


@dataclass(frozen=True)
class EstimateOptions:
    per: str = "face"
    rank_cutoff: int | None = None
    dedupe: bool = True
    per_subgroup_rates: bool = False
    n_boot: int = estimates.N_BOOT
    seed: int = DEFAULT_SEED
    groupings: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(GROUPINGS))


def parse_by(value: str) -> dict[str, tuple[str, ...]]:
    """'job,country' → one grouping job × country; '' → the standard four groupings."""
    names = tuple(part.strip() for part in value.split(",") if part.strip())
    if not names:
        return dict(GROUPINGS)
    unknown = [n for n in names if n not in BY_CHOICES]
    if unknown:
        raise EstimatesError(
            UNKNOWN_BY.format(names=", ".join(unknown), choices=", ".join(BY_CHOICES))
        )
    return {" × ".join(names): names}


def version_active(*, study: Study) -> ModelVersion:
    version = study.model_versions.filter(is_active=True).first()
    if version is None:
        raise EstimatesError(NO_ACTIVE_VERSION.format(study=study.slug))
    return version


def estimates_faces_frame(*, version: ModelVersion) -> pd.DataFrame:
    """One row per face from a search-result image with a prediction of `version`, minus
    faces that are not faces (coders' consensus, exclusion, or the study's triage).
    """
    rows = (
        Prediction.objects.filter(version=version, face__source_image__isnull=False)
        .exclude(face__coding_status=FaceStatus.EXCLUDED)
        .exclude(face__consensus__status=ConsensusStatus.NOT_FACE)
        .values_list(
            "face_id",
            "face__source_image_id",
            "face__source_image__query",
            "face__source_image__job",
            "face__source_image__country",
            "face__source_image__language",
            "face__source_image__rank",
            "label",
            "probability",
            "face__near_duplicate_of_id",
        )
    )
    frame = pd.DataFrame(
        rows,
        columns=[
            "face_id",
            "image_id",
            "query",
            "job",
            "country",
            "language",
            "rank",
            "predicted",
            "probability",
            "duplicate_of",
        ],
    )
    not_face = triage_not_face_ids(study_id=version.study_id)
    frame = frame[~frame["face_id"].isin(not_face)].copy()
    # The human label by the study's aggregation method; "" where coding is not final.
    coded = face_labels(study=version.study)
    frame["consensus"] = coded.label_of(frame["face_id"])
    return frame.reset_index(drop=True)


def estimates_images_frame(*, study: Study) -> pd.DataFrame:
    return pd.DataFrame(
        SourceImage.objects.filter(study=study).values_list(
            "pk", "query", "job", "country", "language", "rank"
        ),
        columns=["image_id", "query", "job", "country", "language", "rank"],
    )


@dataclass(frozen=True)
class ValidationBasis:
    round: ValidationRound | None
    rates: estimates.ErrorRates | None
    frame: pd.DataFrame | None
    sample: str = ""  # which of the round's faces gave the rates


SAMPLE_PROPORTIONAL = "the round's proportional (self-weighting) faces"
SAMPLE_ALL = "all of the round's faces (too few proportional ones)"


def estimates_validation(*, version: ModelVersion) -> ValidationBasis:
    """Se/Sp from the version's newest round with results (its coded faces as they are now).

    Faces drawn for a subgroup minimum over-represent small groups; Se and Sp come from the
    proportionally drawn rest when it has enough faces of each class, else from all faces.
    """
    round = validation_round_latest(version=version)
    if round is None:
        return ValidationBasis(None, None, None)
    frame = validation_round_frame(round=round)
    frame = frame[frame["truth"].isin(["female", "male"]) & frame["predicted"].notna()]
    if frame.empty:
        return ValidationBasis(round, None, None)
    proportional = frame[~frame["stratum"].str.startswith(MINIMUM_PREFIX)]
    counts = proportional["truth"].value_counts()
    if min(counts.get("female", 0), counts.get("male", 0)) >= estimates.MIN_VALIDATION_PER_CLASS:
        frame, sample = proportional, SAMPLE_PROPORTIONAL
    else:
        sample = SAMPLE_ALL
    rates = estimates.ErrorRates.from_labels(frame["truth"], frame["predicted"])
    return ValidationBasis(round, rates, frame, sample)


@dataclass(frozen=True)
class EstimateTables:
    version: ModelVersion
    basis: ValidationBasis
    options: EstimateOptions
    tables: dict[str, pd.DataFrame]

    def combined(self) -> pd.DataFrame:
        """All tables in one frame with a `by` column (the export's shape)."""
        columns = ["by", "job", "country", "query", "language", *estimates.ESTIMATE_COLUMNS]
        parts = []
        for name, table in self.tables.items():
            part = table.copy()
            part.insert(0, "by", name)
            parts.append(part)
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        for column in columns:
            if column not in frame.columns:
                frame[column] = ""
        frame[["job", "country", "query", "language"]] = frame[
            ["job", "country", "query", "language"]
        ].fillna("")
        return frame[columns]


def estimate_tables(*, version: ModelVersion, options: EstimateOptions) -> EstimateTables:
    faces = estimates_faces_frame(version=version)
    images = estimates_images_frame(study=version.study)
    basis = estimates_validation(version=version)
    tables = {}
    for name, by in options.groupings.items():
        tables[name] = estimates.share_estimates(
            faces,
            by=list(by),
            rates=basis.rates,
            images=images,
            validation=basis.frame,
            per=options.per,
            rank_cutoff=options.rank_cutoff,
            dedupe=options.dedupe,
            per_subgroup_rates=options.per_subgroup_rates,
            n_boot=options.n_boot,
            seed=options.seed,
        )
    return EstimateTables(version, basis, options, tables)
