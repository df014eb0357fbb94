"""The subgroup attributes of faces, as one DataFrame for CV, validation and estimates."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from annotate.labels import ATTRIBUTE_QUESTIONS
from annotate.models import Consensus, Face, KnownLabel

CODED_ATTRIBUTES = tuple(ATTRIBUTE_QUESTIONS)  # race, age_band, glasses, quality
COLUMNS = ["face_id", *CODED_ATTRIBUTES, "job", "country", "language", "query", "rank"]


def face_attributes_frame(*, face_ids: Iterable[int]) -> pd.DataFrame:
    """One row per face: coded attributes and the provenance of its source image.

    A coded attribute comes from the coders' majority (Consensus.attributes) where there is
    one, else from an imported training label; hidden demo truth is never used. Missing
    values are empty strings, so groupby keeps them as their own "unknown" group.
    """
    ids = list(face_ids)
    frame = pd.DataFrame(
        Face.objects.filter(pk__in=ids).values_list(
            "pk",
            "source_image__job",
            "source_image__country",
            "source_image__language",
            "source_image__query",
            "source_image__rank",
        ),
        columns=["face_id", "job", "country", "language", "query", "rank"],
    )
    for name in CODED_ATTRIBUTES:
        frame[name] = ""
    if frame.empty:
        return frame[COLUMNS]
    frame = frame.set_index("face_id")
    known = KnownLabel.objects.filter(face_id__in=ids, usage=KnownLabel.Usage.TRAIN)
    imported = pd.DataFrame(
        list(known.values_list("face_id", *CODED_ATTRIBUTES)),
        columns=["face_id", *CODED_ATTRIBUTES],
    )
    coded = pd.DataFrame(
        [
            (face_id, *(attributes.get(name) for name in CODED_ATTRIBUTES))
            for face_id, attributes in Consensus.objects.filter(face_id__in=ids).values_list(
                "face_id", "attributes"
            )
        ],
        columns=["face_id", *CODED_ATTRIBUTES],
    )
    for source in (imported, coded):  # later sources win where they have a value
        source = source.drop_duplicates("face_id", keep="last").set_index("face_id")
        for name in CODED_ATTRIBUTES:
            values = source[name]
            values = values[values.notna() & (values.astype(str) != "")]
            frame.loc[values.index, name] = values.astype(str)
    for name in ("job", "country", "language", "query"):
        frame[name] = frame[name].fillna("")
    return frame.reset_index()[COLUMNS]
