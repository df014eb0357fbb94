"""The image pipeline: decode → detect → crop → store, for one planned list of files.

`ImagePipeline` runs the files an image import planned (annotate.services.ingest) through the
detector and stores each image with its faces. Its promises:

- one bad file never aborts the run: it is rejected with a reason in the report;
- nothing is half-written: each image and its faces are stored in one transaction, and the
  files written for a row that fails are deleted again;
- duplicates (same bytes) within a study are skipped and reported, never stored twice;
- near-duplicate faces within a query (the same picture posted again: `annotate.ingest.phash`)
  are flagged (`Face.near_duplicate_of`, always the first face of the cluster), not dropped;
- a file this batch already stored (work delivered again) is counted, not stored twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeGuard

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from PIL import Image

from annotate.ingest.archive import Entry, EntryRejected
from annotate.ingest.crops import CROP_MARGIN, CROP_SIZE, face_crop
from annotate.ingest.detect import (
    Detection,
    Detector,
    detection_copy,
    detections_scale,
    detector_make,
)
from annotate.ingest.images import SUFFIX_FOR_FORMAT, ImageRejected, OpenedImage, image_open
from annotate.ingest.manifest import ManifestRow
from annotate.ingest.phash import (
    HashIndex,
    crop_print,
    crop_probes,
    dhash,
    hash_hex,
    hash_int,
    print_hex,
)
from annotate.models import Face, ImportBatch, SourceImage
from annotate.services.import_jobs import Progress
from annotate.services.import_report import REJECT_DUPLICATE, REJECT_STORE, ImportReport
from annotate.services.storage import files_delete, jpeg_bytes

logger = logging.getLogger(__name__)

# Images detected together: one detector call (a GPU batch) per chunk, bounded in pixels too,
# so memory stays flat however large the upload.
CHUNK_IMAGES = 16
CHUNK_PIXELS = 120_000_000

REJECT_DUPLICATE_IN_BATCH = "duplicate: same content as {name!r} earlier in this upload"
REJECT_DETECTION = "face detection failed: {detail}"
REJECT_READ = "could not be read: {detail}"


_detector_cache: dict[str, Detector] = {}


def detector_default() -> Detector:
    """The configured detector, loaded once per process (workers keep it between tasks)."""
    name = settings.FACET_DETECTOR
    if name not in _detector_cache:
        _detector_cache[name] = detector_make(name)
    return _detector_cache[name]


@dataclass
class _Prepared:
    entry: Entry
    data: bytes
    sha256: str
    opened: OpenedImage
    row: ManifestRow | None
    small: Image.Image  # the copy the detector sees
    scale: float  # from `small` back to the full image


@dataclass
class _Rejected:
    name: str
    reason: str


@dataclass
class _Crop:
    box: Detection  # in full-image coordinates
    jpeg: bytes
    phash: int  # 64-bit dHash, Face.phash
    fingerprint: int  # Face.crop_print, what the near-duplicate rule stores
    probes: list[int]  # what the rule compares this face through


def _decode(entry: Entry, row: ManifestRow | None) -> _Prepared | _Rejected:
    """Read, hash and decode one file (runs in the decode thread; never touches the DB)."""
    try:
        data = entry.read()
        opened = image_open(data)
    except (EntryRejected, ImageRejected) as exc:
        return _Rejected(entry.name, getattr(exc, "reason", str(exc)))
    except Exception as exc:  # an unreadable archive member, a full disk: this file only
        return _Rejected(entry.name, REJECT_READ.format(detail=exc))
    small, scale = detection_copy(opened.image)
    return _Prepared(entry, data, hashlib.sha256(data).hexdigest(), opened, row, small, scale)


def _crop_all(
    chunk: list[_Prepared], detections: list[list[Detection] | Exception], min_side: int
) -> list[tuple[list[_Crop], int] | Exception]:
    """Square crops, JPEG bytes and hashes of each image's faces (runs in the crop thread)."""
    results: list[tuple[list[_Crop], int] | Exception] = []
    for item, found in zip(chunk, detections, strict=True):
        if isinstance(found, Exception):
            results.append(found)
            continue
        boxes = detections_scale(found, item.scale)
        kept = [box for box in boxes if box.side >= min_side]
        crops = []
        for box in kept:
            crop = face_crop(item.opened.image, box, size=CROP_SIZE, margin=CROP_MARGIN)
            crops.append(
                _Crop(box, jpeg_bytes(crop), dhash(crop), crop_print(crop), crop_probes(crop))
            )
        results.append((crops, len(boxes) - len(kept)))
    return results


def _lookahead(
    pool: ThreadPoolExecutor, work: list[tuple], fn: Callable, *, depth: int
) -> Iterator:
    """fn(*args) for each item of work, computed up to `depth` items ahead, yielded in order."""
    queue: deque[Future] = deque()
    items = iter(work)
    for args in islice(items, depth):
        queue.append(pool.submit(fn, *args))
    while queue:
        future = queue.popleft()
        following = next(items, None)
        if following is not None:
            queue.append(pool.submit(fn, *following))
        yield future.result()


class ImagePipeline:
    """Decode → detect → crop → store, with the CPU work overlapping the detector.

    One thread reads, hashes and decodes the next files while the detector runs; another
    crops and encodes the faces of the last chunk while the main thread stores the chunk
    before it. Only the main thread touches the database, and results are stored in file
    order, so reports and near-duplicate flags do not depend on timing. At most a few chunks
    are in memory at once, whatever the size of the upload.
    """

    def __init__(
        self, batch: ImportBatch, detector: Detector, report: ImportReport, progress: Progress
    ) -> None:
        self.batch = batch
        self.study = batch.study
        self.detector = detector
        self.report = report
        self.progress = progress
        self.chunk_size = max(1, min(CHUNK_IMAGES, getattr(detector, "batch_size", 1)))
        self.seen_in_batch: dict[str, str] = {}
        self.hash_indexes: dict[str, HashIndex] = {}
        # Content hashes already in the study, read once (64 bytes each: 50,000 images ≈ 3 MB);
        # an import racing this one is still caught by the unique constraint when storing.
        self.existing: dict[str, tuple[str, int | None, int]] = {
            sha: (name, batch_id, pk)
            for sha, name, batch_id, pk in SourceImage.objects.filter(study=self.study).values_list(
                "sha256", "original_name", "batch_id", "pk"
            )
        }

    def run(self, work: list[tuple[Entry, ManifestRow | None]]) -> None:
        with (
            ThreadPoolExecutor(1, thread_name_prefix="ingest-decode") as decoder,
            ThreadPoolExecutor(1, thread_name_prefix="ingest-crop") as cropper,
        ):
            pending: tuple[list[_Prepared], Future] | None = None
            decoded = _lookahead(decoder, work, _decode, depth=self.chunk_size + 2)
            for chunk in self._chunks(decoded):
                self.progress.advance(0)  # a heartbeat per detector call, progress or not
                detections = self._detect([item.small for item in chunk])
                crops = cropper.submit(_crop_all, chunk, detections, self.study.min_face_px)
                if pending is not None:
                    self._store_chunk(*pending)
                pending = (chunk, crops)
            if pending is not None:
                self._store_chunk(*pending)
        self.progress.advance(0, flush=True)

    def _chunks(self, decoded: Iterator[_Prepared | _Rejected]) -> Iterator[list[_Prepared]]:
        chunk: list[_Prepared] = []
        pixels = 0
        for item in decoded:
            if not self._accept(item):
                self.progress.advance(1)
                continue
            chunk.append(item)
            pixels += item.opened.width * item.opened.height
            if len(chunk) >= self.chunk_size or pixels >= CHUNK_PIXELS:
                yield chunk
                chunk, pixels = [], 0
        if chunk:
            yield chunk

    def _accept(self, item: _Prepared | _Rejected) -> TypeGuard[_Prepared]:
        if isinstance(item, _Rejected):
            self.report.reject_file(item.name, item.reason)
            return False
        name = item.entry.name
        if item.sha256 in self.seen_in_batch:
            earlier = self.seen_in_batch[item.sha256]
            self.report.duplicate(name, REJECT_DUPLICATE_IN_BATCH.format(name=earlier))
            return False
        existing = self.existing.get(item.sha256)
        if existing is not None:
            existing_name, existing_batch, existing_pk = existing
            if existing_batch == self.batch.pk and existing_name == name[:500]:
                # This very file, stored by an earlier run of this batch (a task delivered
                # again after its worker was lost): count it, do not store it twice.
                self._count_stored(existing_pk)
            else:
                self.report.duplicate(name, REJECT_DUPLICATE.format(name=existing_name))
            return False
        self.seen_in_batch[item.sha256] = name
        return True

    def _count_stored(self, image_pk: int) -> None:
        self.report.imported += 1
        faces = Face.objects.filter(source_image_id=image_pk).count()
        self.report.faces_found += faces
        self.report.images_without_faces += not faces

    def _stored_here(self, item: _Prepared) -> int | None:
        """The image this batch stored for this very file meanwhile (a copy of the work that
        lost its claim stored it while this one ran), or None."""
        return (
            SourceImage.objects.filter(
                study=self.study,
                sha256=item.sha256,
                batch=self.batch,
                original_name=item.entry.name[:500],
            )
            .values_list("pk", flat=True)
            .first()
        )

    def _store_chunk(self, chunk: list[_Prepared], crops: Future) -> None:
        for item, found in zip(chunk, crops.result(), strict=True):
            if isinstance(found, Exception):
                self.report.reject_file(item.entry.name, REJECT_DETECTION.format(detail=found))
            else:
                self._store(item, *found)
            item.opened.image.close()
        self.progress.advance(len(chunk))

    def _detect(self, images: list[Image.Image]) -> list[list[Detection] | Exception]:
        try:
            return list(self.detector.detect(images))
        except Exception:
            logger.warning("detection failed on a chunk; retrying image by image", exc_info=True)
        results: list[list[Detection] | Exception] = []
        for image in images:
            try:
                results.append(self.detector.detect([image])[0])
            except Exception as exc:
                results.append(exc)
        return results

    def _hash_index(self, query: str) -> HashIndex:
        if query not in self.hash_indexes:
            known = Face.objects.filter(study=self.study, source_image__query=query).values_list(
                "id", "near_duplicate_of_id", "crop_print"
            )
            self.hash_indexes[query] = HashIndex(
                (first or pk, value)
                for pk, first, text in known
                if (value := hash_int(text)) is not None
            )
        return self.hash_indexes[query]

    def _store(self, item: _Prepared, crops: list[_Crop], too_small: int) -> None:
        row = item.row
        query = row.query if row else ""
        index = self._hash_index(query)
        written: list[str] = []
        added: list[tuple[int, int]] = []  # (first face of its cluster, print)
        flagged = 0
        try:
            with transaction.atomic():
                image = SourceImage(
                    study=self.study,
                    batch=self.batch,
                    original_name=item.entry.name[:500],
                    sha256=item.sha256,
                    width=item.opened.width,
                    height=item.opened.height,
                    bytes=len(item.data),
                    query=query,
                    job=row.job if row else "",
                    country=row.country if row else "",
                    language=row.language if row else "",
                    rank=row.rank if row else None,
                    source_url=row.source_url if row else "",
                    metadata=_metadata(item, row),
                )
                # The fields name files at random (annotate.filenames); only the suffix counts.
                suffix = SUFFIX_FOR_FORMAT.get(item.opened.format, ".img")
                image.file.save(f"image{suffix}", ContentFile(item.data), save=False)
                written.append(str(image.file.name))  # named by the save above
                image.save()
                faces, same_image = [], []
                # A second crop of one face inside the same image points at the first; keys
                # are positions in `crops` until the faces have ids.
                earlier = HashIndex()
                for number, crop in enumerate(crops):
                    near = index.nearest(*crop.probes)
                    twin = earlier.nearest(*crop.probes) if near is None else None
                    face = Face(
                        study=self.study,
                        source_image=image,
                        origin=Face.Origin.DETECTED,
                        crop_sha256=hashlib.sha256(crop.jpeg).hexdigest(),
                        original_name=item.entry.name[:500],
                        box_x=crop.box.x,
                        box_y=crop.box.y,
                        box_w=crop.box.w,
                        box_h=crop.box.h,
                        detector=self.detector.name,
                        detector_score=crop.box.score,
                        phash=hash_hex(crop.phash),
                        crop_print=print_hex(crop.fingerprint),
                        near_duplicate_of_id=near,
                        votes_target=self.study.votes_per_face,
                    )
                    face.crop.save("crop.jpg", ContentFile(crop.jpeg), save=False)
                    written.append(str(face.crop.name))  # named by the save above
                    faces.append(face)
                    if twin is not None:
                        same_image.append((number, twin))
                    earlier.add(twin if twin is not None else number, crop.fingerprint)
                    flagged += near is not None or twin is not None
                Face.objects.bulk_create(faces)
                for number, twin in same_image:
                    faces[number].near_duplicate_of_id = faces[twin].near_duplicate_of_id or (
                        faces[twin].pk
                    )
                if same_image:
                    Face.objects.bulk_update(
                        [faces[number] for number, _ in same_image], ["near_duplicate_of"]
                    )
                added = [
                    (face.near_duplicate_of_id or face.pk, crop.fingerprint)
                    for face, crop in zip(faces, crops, strict=True)
                ]
        except IntegrityError:
            files_delete(written)
            stored = self._stored_here(item)
            if stored is not None:
                self._count_stored(stored)
            else:
                self.report.duplicate(
                    item.entry.name, REJECT_DUPLICATE.format(name="another import")
                )
            return
        except Exception as exc:
            files_delete(written)
            logger.warning("storing %s failed", item.entry.name, exc_info=True)
            self.report.reject_file(item.entry.name, REJECT_STORE.format(detail=exc))
            return
        for first, fingerprint in added:
            index.add(first, fingerprint)
        self.report.imported += 1
        self.report.faces_found += len(crops)
        self.report.faces_too_small += too_small
        self.report.near_duplicate_faces += flagged
        self.report.images_without_faces += not crops


def _metadata(item: _Prepared, row: ManifestRow | None) -> dict[str, Any]:
    metadata: dict[str, Any] = dict(row.metadata) if row else {}
    if row is not None:
        metadata["manifest_line"] = row.line
    if item.opened.notes:
        metadata["ingest_notes"] = list(item.opened.notes)
    return metadata
