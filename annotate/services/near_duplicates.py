"""Near-duplicate flags set after the fact: across the chunks of one import, and a whole study
redone with the current rule (annotate/ingest/phash.py).

Imports flag near-duplicates as they store faces; chunks of one upload imported at the same
time cannot see each other's faces, so the last one to finish reconciles them
(`near_duplicates_reconcile`). Faces stored before the rule changed carry no crop print (so
they are never compared) and may carry flags of the old rule, which took distinct people for
copies and so dropped them from estimates; `near_duplicates_recompute` recomputes every face's
print from its stored crop and every flag from scratch, the way an import in id order would.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.core.files.storage import default_storage
from django.db import transaction
from PIL import Image

from annotate.ingest.phash import HashIndex, crop_print, crop_probes, hash_int, print_hex
from annotate.models import Face, ImportBatch, Study

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecomputeReport:
    faces: int
    unreadable: int  # crops that could not be read: left unflagged and never compared
    flagged_before: int
    flagged_now: int
    unflagged: int  # flags of the old rule removed
    newly_flagged: int


def near_duplicates_recompute(*, study: Study) -> RecomputeReport:
    """Recompute crop prints and near-duplicate flags of every face of `study`.

    Within each search query, faces are compared in id order, and a flag points at the first
    face of its cluster, as at import. Reads every crop once (about 20 ms a face). Writes in
    one transaction at the end, so an interruption leaves the old flags as they were.
    """
    faces = list(
        Face.objects.filter(study=study)
        .order_by("id")
        .values_list("id", "crop", "source_image__query", "near_duplicate_of_id")
    )
    before = {pk: first for pk, _, _, first in faces}
    prints: dict[int, str] = {}
    after: dict[int, int | None] = {}
    indexes: dict[str, HashIndex] = {}
    unreadable = 0
    for pk, crop_name, query, _ in faces:
        try:
            with default_storage.open(crop_name, "rb") as handle, Image.open(handle) as image:
                crop = image.convert("RGB")
        except Exception:
            logger.warning("face %s: crop %s unreadable; not compared", pk, crop_name)
            unreadable += 1
            after[pk] = None
            continue
        index = indexes.setdefault(query or "", HashIndex())
        near = index.nearest(*crop_probes(crop))
        after[pk] = near
        value = crop_print(crop)
        prints[pk] = print_hex(value)
        index.add(near or pk, value)
    with transaction.atomic():
        Face.objects.bulk_update(
            [
                Face(pk=pk, crop_print=prints.get(pk, ""), near_duplicate_of_id=after[pk])
                for pk in after
            ],
            ["crop_print", "near_duplicate_of"],
            batch_size=1000,
        )
    report = RecomputeReport(
        faces=len(faces),
        unreadable=unreadable,
        flagged_before=sum(first is not None for first in before.values()),
        flagged_now=sum(first is not None for first in after.values()),
        unflagged=sum(before[pk] is not None and after[pk] is None for pk in after),
        newly_flagged=sum(before[pk] is None and after[pk] is not None for pk in after),
    )
    logger.info("near-duplicates of %s recomputed: %s", study.slug, report)
    return report


def near_duplicates_reconcile(*, batch_id: int) -> int:
    """Flag the near-duplicates that chunks running at the same time could not see.

    A chunk compares each face with the faces of its query stored when the chunk first looked;
    two chunks running together miss each other's. After the last chunk, every face of the
    batch still unflagged is compared with the faces of its query that came before it (lower
    id), the same rule a single run applies (its probes are read from its stored crop). A
    face flagged here takes the faces that pointed at it along, so every flag still points at
    the first face of its cluster. Returns how many faces it flagged (the batch report counts
    flagged faces from the rows). Safe to run twice: a second run finds nothing new.
    """
    batch = ImportBatch.objects.get(pk=batch_id)
    unflagged = dict(
        Face.objects.filter(source_image__batch=batch, near_duplicate_of__isnull=True).values_list(
            "id", "source_image__query"
        )
    )
    moved: dict[int, int] = {}  # face newly flagged -> first face of its cluster
    for query in sorted(set(unflagged.values())):
        index = HashIndex()
        known = (
            Face.objects.filter(study_id=batch.study_id, source_image__query=query)
            .order_by("id")
            .values_list("id", "near_duplicate_of_id", "crop_print", "crop")
        )
        for face_id, first, text, crop_name in known.iterator(chunk_size=2000):
            value = hash_int(text)
            if value is None:
                continue
            if face_id in unflagged and len(index):
                near = index.nearest(*_stored_probes(crop_name))
                if near is not None:
                    moved[face_id] = first = near
            index.add(moved.get(first, first) if first else face_id, value)
    if not moved:
        return 0
    with transaction.atomic():
        Face.objects.bulk_update(
            [Face(pk=pk, near_duplicate_of_id=first) for pk, first in moved.items()],
            ["near_duplicate_of"],
            batch_size=1000,
        )
        for pk, first in moved.items():
            Face.objects.filter(near_duplicate_of_id=pk).update(near_duplicate_of_id=first)
    logger.info("import batch %s: %d near-duplicates flagged across chunks", batch_id, len(moved))
    return len(moved)


def _stored_probes(crop_name: str) -> list[int]:
    """The near-duplicate probes of a stored crop; none (never flagged) when it is unreadable."""
    try:
        with default_storage.open(crop_name, "rb") as handle, Image.open(handle) as crop:
            return crop_probes(crop.convert("RGB"))
    except Exception:
        logger.warning(
            "could not read crop %s to compare it for duplicates", crop_name, exc_info=True
        )
        return []
