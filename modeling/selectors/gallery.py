"""The misclassification gallery: faces of a version, filtered in SQL, paginated in SQL.

Filters map to indexed columns where possible: the version and predicted label
(`prediction_gallery`), the source image's job/country (`image_job_country`), the consensus
status/label; coded attributes are JSON keys of Consensus.attributes. Only the page's rows
are loaded, with their votes and their triage (the face's verdict, whichever version's
gallery it was made from, and its history) fetched in one query each. In a study that
aggregates by Dawid–Skene, "humans said" is its label (annotate.selectors.labels), as in
validation; those filters then match faces by id.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.paginator import Page, Paginator
from django.db.models import F, FloatField, Func, Q, QuerySet, Value

from annotate.labels import ATTRIBUTE_QUESTIONS, Gender
from annotate.models import AggregationMethod, ConsensusStatus, Vote
from annotate.selectors.labels import face_labels
from modeling.evaluation import INTERSECTION_SEPARATOR
from modeling.models import ModelVersion, Prediction
from modeling.selectors.triage import triage_for_faces

PAGE_SIZE = 48
DIRECTIONS = {
    "female_to_male": (Gender.FEMALE.value, Gender.MALE.value),
    "male_to_female": (Gender.MALE.value, Gender.FEMALE.value),
}
DIRECTION_LABEL = "Model said {predicted}, humans said {human}"
DIRECTION_LABELS = {
    name: DIRECTION_LABEL.format(predicted=predicted, human=human)
    for name, (human, predicted) in DIRECTIONS.items()
}
SHOW_CHOICES = ("errors", "all")
IMAGE_FIELDS = ("job", "country", "query", "language")
UNKNOWN_ATTRIBUTE = "Unknown attribute {name!r}; choose one of: {choices}."
BAD_FILTER = "The attribute and group filters must name the same number of parts."
GROUP_WITHOUT_ATTRIBUTE = "Choose the attribute that group {group!r} belongs to."
# Why a gallery page has no cards; the template says what to do about each.
EMPTY_NO_PREDICTIONS = "no_predictions"
EMPTY_NO_HUMAN_LABELS = "no_human_labels"
EMPTY_FILTERS = "filters"
EMPTY_NO_ERRORS = "no_errors"
TRUSTED = (ConsensusStatus.AGREED, ConsensusStatus.ADJUDICATED)
BINARY = (Gender.FEMALE.value, Gender.MALE.value)


class GalleryFilterError(ValueError):
    """A filter the gallery cannot apply; the message says which values work."""


@dataclass(frozen=True)
class GalleryFilters:
    attribute: str = ""
    group: str = ""
    direction: str = ""
    show: str = "errors"
    round_id: int | None = None
    job: str = ""
    country: str = ""
    query: str = ""
    max_rank: int | None = None  # the estimates' top-N cut-off


class Abs(Func):
    function = "ABS"
    output_field = FloatField()


def _attribute_q(name: str, value: str) -> Q:
    if name in IMAGE_FIELDS:
        return Q(**{f"face__source_image__{name}": value})
    if name in ATTRIBUTE_QUESTIONS:
        return Q(**{f"face__consensus__attributes__{name}": value})
    choices = ", ".join((*IMAGE_FIELDS, *ATTRIBUTE_QUESTIONS))
    raise GalleryFilterError(UNKNOWN_ATTRIBUTE.format(name=name, choices=choices))


def gallery_queryset(
    *, version: ModelVersion, filters: GalleryFilters, human: dict[int, str] | None = None
) -> QuerySet[Prediction]:
    """Predictions of `version` matching the filters, the most confident first.

    show="errors": faces whose trusted consensus (agreed/adjudicated, female or male)
    differs from the prediction; show="all": every predicted face (for the estimates' trail).
    `human`: a Dawid–Skene study's labels (`dawid_skene_labels`), when the caller has them.
    """
    qs = Prediction.objects.filter(version=version)
    if filters.show not in SHOW_CHOICES:
        raise GalleryFilterError(f"show must be one of: {', '.join(SHOW_CHOICES)}")
    if filters.direction and filters.direction not in DIRECTIONS:
        raise GalleryFilterError(f"direction must be one of: {', '.join(DIRECTIONS)}")
    if version.study.aggregation == AggregationMethod.DAWID_SKENE:
        human = dawid_skene_labels(version=version) if human is None else human
        qs = _disagreeing(qs, human=human, filters=filters)
    else:
        if filters.show == "errors":
            qs = qs.filter(
                face__consensus__status__in=TRUSTED,
                face__consensus__label__in=[Gender.FEMALE, Gender.MALE],
            ).exclude(face__consensus__label=F("label"))
        if filters.direction:
            truth, predicted = DIRECTIONS[filters.direction]
            qs = qs.filter(face__consensus__label=truth, label=predicted)
    if filters.group and not filters.attribute:
        raise GalleryFilterError(GROUP_WITHOUT_ATTRIBUTE.format(group=filters.group))
    if filters.attribute or filters.group:
        names = filters.attribute.split(INTERSECTION_SEPARATOR)
        values = filters.group.split(INTERSECTION_SEPARATOR)
        if len(names) != len(values):
            raise GalleryFilterError(BAD_FILTER)
        for name, value in zip(names, values, strict=True):
            qs = qs.filter(_attribute_q(name.strip(), value.strip()))
    for name in ("job", "country", "query"):
        if getattr(filters, name):
            qs = qs.filter(_attribute_q(name, getattr(filters, name)))
    if filters.max_rank is not None:
        qs = qs.filter(face__source_image__rank__lte=filters.max_rank)
    if filters.round_id is not None:
        qs = qs.filter(face__validation_items__round_id=filters.round_id)
    return qs.annotate(confidence=Abs(F("probability") - Value(0.5))).order_by(
        "-confidence", "face_id"
    )


def _disagreeing(
    qs: QuerySet[Prediction], *, human: dict[int, str], filters: GalleryFilters
) -> QuerySet[Prediction]:
    """The errors and direction filters against labels that live in Python, not in a column
    (a Dawid–Skene study's): the matching faces by id."""
    if filters.show != "errors" and not filters.direction:
        return qs
    wanted = DIRECTIONS.get(filters.direction)
    ids = [
        face_id
        for face_id, predicted in qs.values_list("face_id", "label")
        if human.get(face_id) in BINARY
        and human[face_id] != predicted
        and (wanted is None or (human[face_id], predicted) == wanted)
    ]
    return qs.filter(face_id__in=ids)


def dawid_skene_labels(*, version: ModelVersion) -> dict[int, str]:
    """Each trusted face's label in a Dawid–Skene study (the labels validation uses); one EM
    fit over the study's votes, so a page computes it once."""
    return face_labels(study=version.study).frame["label"].to_dict()


def gallery_page(*, version: ModelVersion, filters: GalleryFilters, page: int | str = 1) -> Page:
    """One page of gallery cards: prediction, face, source image, consensus, votes, triage."""
    dawid_skene = version.study.aggregation == AggregationMethod.DAWID_SKENE
    human = dawid_skene_labels(version=version) if dawid_skene else None
    qs = gallery_queryset(version=version, filters=filters, human=human).select_related(
        "face", "face__source_image", "face__consensus"
    )
    paginator = Paginator(qs, PAGE_SIZE)
    page_obj = paginator.get_page(page)
    predictions = list(page_obj.object_list)
    face_ids = [p.face_id for p in predictions]
    votes: dict[int, list[Vote]] = {}
    for vote in Vote.objects.filter(face_id__in=face_ids, retracted_at__isnull=True).order_by("id"):
        votes.setdefault(vote.face_id, []).append(vote)
    triages = triage_for_faces(face_ids=face_ids)
    if human is not None:
        truth = human
    else:
        truth = {
            p.face_id: p.face.consensus.label
            for p in predictions
            if getattr(p.face, "consensus", None) and p.face.consensus.status in TRUSTED
        }
    # What each card of modeling/gallery.html shows besides the prediction itself.
    for prediction in predictions:
        prediction.live_votes = votes.get(prediction.face_id, [])  # type: ignore[attr-defined]
        prediction.triage = triages.get(prediction.face_id)  # type: ignore[attr-defined]
        direction = _direction_label(prediction, truth.get(prediction.face_id))
        prediction.direction_label = direction  # type: ignore[attr-defined]
    page_obj.object_list = predictions
    return page_obj


def _direction_label(prediction: Prediction, human: str | None) -> str:
    """'Model said male, humans said female' for a face whose trusted label differs."""
    if human not in BINARY or human == prediction.label:
        return ""
    return DIRECTION_LABEL.format(predicted=prediction.label, human=human)


def gallery_group_values(*, version: ModelVersion) -> dict[str, list[str]]:
    """The values each attribute takes among the faces `version` predicted, for the group
    filter; attributes with no value are left out."""
    predictions = Prediction.objects.filter(version=version)
    paths = {name: f"face__consensus__attributes__{name}" for name in ATTRIBUTE_QUESTIONS}
    paths |= {name: f"face__source_image__{name}" for name in IMAGE_FIELDS}
    result: dict[str, list[str]] = {}
    for name, path in paths.items():
        values = predictions.values_list(path, flat=True).distinct().order_by()
        found = sorted({str(v) for v in values if v not in (None, "")})
        if found:
            result[name] = found
    return result


def gallery_empty_reason(*, version: ModelVersion, filters: GalleryFilters) -> str:
    """Why the gallery of `version` under `filters` holds no face (one of EMPTY_*)."""
    predictions = Prediction.objects.filter(version=version)
    if not predictions.exists():
        return EMPTY_NO_PREDICTIONS
    if (
        filters.show == "errors"
        and not predictions.filter(
            face__consensus__status__in=TRUSTED,
            face__consensus__label__in=[Gender.FEMALE, Gender.MALE],
        ).exists()
    ):
        return EMPTY_NO_HUMAN_LABELS
    narrowed = (
        filters.attribute,
        filters.group,
        filters.direction,
        filters.job,
        filters.country,
        filters.query,
        filters.max_rank,
        filters.round_id,
    )
    if any(narrowed):
        return EMPTY_FILTERS
    return EMPTY_NO_ERRORS
