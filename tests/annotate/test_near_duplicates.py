"""Near-duplicates are the same picture posted again, never two similar-looking people.

Measured on real faces: the 540 distinct people of data/fairface540 (beside the project) must
raise no flag, and re-encoded, resized and slightly cropped copies of them must be flagged
against their original. The folder is optional on a developer machine; with
FACET_REQUIRE_SERVICES=1 (CI) its absence fails these tests instead of skipping them.
"""

from __future__ import annotations

import io
import random
import shutil
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest
from PIL import Image

from annotate.ingest.crops import square_resize
from annotate.ingest.phash import HashIndex, crop_print, crop_probes
from annotate.models import Face
from annotate.services.ingest_faces import faces_import
from tests.conftest import ROOT, missing_service
from tests.factories import make_study

FAIRFACE = (ROOT / "../shared/data/fairface540").resolve()
MIN_RECALL = 0.95


def _fairface() -> Path:
    if not (FAIRFACE / "labels.csv").is_file():
        missing_service(f"FairFace sample not present ({FAIRFACE})")
    return FAIRFACE


@cache
def _originals() -> tuple[Image.Image, ...]:
    paths = sorted((_fairface() / "fairface").glob("*.jpg"))
    assert len(paths) == 540
    images = []
    for path in paths:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    return tuple(images)


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    with Image.open(io.BytesIO(buffer.getvalue())) as copy:
        return copy.convert("RGB")


def _reencoded(image: Image.Image, rng: random.Random) -> Image.Image:
    return _jpeg(image, rng.randint(60, 90))


def _resized(image: Image.Image, rng: random.Random) -> Image.Image:
    scale = rng.uniform(0.5, 0.9)
    size = (round(image.width * scale), round(image.height * scale))
    return _jpeg(image.resize(size, Image.Resampling.BICUBIC), 90)


def _cropped(image: Image.Image, rng: random.Random) -> Image.Image:
    """Up to 5 % of the width and of the height cut off, split at random between the sides."""
    dx = round(image.width * rng.uniform(0.01, 0.05))
    dy = round(image.height * rng.uniform(0.0, 0.05))
    left, top = rng.randint(0, dx), rng.randint(0, dy)
    box = (left, top, image.width - (dx - left), image.height - (dy - top))
    return _jpeg(image.crop(box), 90)


def _all_three(image: Image.Image, rng: random.Random) -> Image.Image:
    return _reencoded(_resized(_cropped(image, rng), rng), rng)


COPIES: dict[str, Callable[[Image.Image, random.Random], Image.Image]] = {
    "reencoded": _reencoded,
    "resized": _resized,
    "cropped": _cropped,
    "all_three": _all_three,
}


def _as_imported(image: Image.Image) -> Image.Image:
    """The crop that import_faces hashes."""
    return square_resize(image)


@cache
def _original_prints() -> tuple[int, ...]:
    return tuple(crop_print(_as_imported(image)) for image in _originals())


@pytest.mark.slow
def test_no_two_of_540_distinct_people_are_near_duplicates():
    prints = _original_prints()
    index = HashIndex()
    flagged = []
    for number, image in enumerate(_originals()):
        near = index.nearest(*crop_probes(_as_imported(image)))
        if near is not None:
            flagged.append((number, near))
        index.add(number, prints[number])
    assert flagged == []


@pytest.mark.slow
@pytest.mark.parametrize("transform", sorted(COPIES))
def test_copies_of_a_picture_are_flagged_against_their_original(transform):
    """Both orders: the copy arriving after its original, and before it."""
    rng = random.Random(transform)
    originals = _originals()
    prints = _original_prints()
    index = HashIndex(enumerate(prints))
    found_after = found_before = 0
    for number, image in enumerate(originals):
        copy = _as_imported(COPIES[transform](image, rng))
        found_after += index.nearest(*crop_probes(copy)) == number
        alone = HashIndex([(number, crop_print(copy))])
        found_before += alone.nearest(*crop_probes(_as_imported(image))) == number
    assert found_after / len(originals) >= MIN_RECALL, (transform, found_after)
    assert found_before / len(originals) >= MIN_RECALL, (transform, found_before)


@pytest.mark.slow
@pytest.mark.django_db
def test_importing_the_540_people_flags_none(tmp_path):
    folder = _fairface()
    study = make_study()
    batch = faces_import(
        study=study,
        folder=folder,
        labels=(folder / "labels.csv").read_bytes(),
        labels_name="labels.csv",
    )
    assert batch.report["imported"] == 540, batch.report
    assert batch.report["near_duplicate_faces"] == 0
    assert not Face.objects.filter(study=study, near_duplicate_of__isnull=False).exists()


@pytest.mark.django_db
def test_imported_copies_point_at_their_original_and_distinct_people_do_not(tmp_path):
    source = _fairface() / "fairface"
    folder = tmp_path / "faces"
    folder.mkdir()
    rng = random.Random(0)
    lines = ["path,gender"]
    for name in ("fairface_0001.jpg", "fairface_0002.jpg", "fairface_0003.jpg"):
        shutil.copy(source / name, folder / name)
        lines.append(f"{name},female")
    with Image.open(source / "fairface_0001.jpg") as image:
        _all_three(image.convert("RGB"), rng).save(folder / "copy.jpg", quality=85)
    lines.append("copy.jpg,female")
    batch = faces_import(
        study=make_study(),
        folder=folder,
        labels="\n".join(lines).encode(),
        labels_name="labels.csv",
    )
    faces = {face.original_name: face for face in Face.objects.all()}
    assert batch.report["imported"] == 4 and batch.report["near_duplicate_faces"] == 1
    assert faces["copy.jpg"].near_duplicate_of == faces["fairface_0001.jpg"]
    assert [name for name, face in faces.items() if face.near_duplicate_of_id] == ["copy.jpg"]
    assert len(faces["copy.jpg"].crop_print) == 64
