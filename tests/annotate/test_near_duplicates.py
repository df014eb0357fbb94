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
from annotate.ingest.phash import HashIndex, crop_print, crop_probes, hamming, hash_int
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


@pytest.mark.django_db
def test_recompute_replaces_old_rule_flags_and_fills_missing_prints(tmp_path):
    """A study imported under the old 64-bit rule: a distinct person flagged as a copy, a real
    copy missed, no prints. The command redoes all of it; nothing else changes."""
    from django.core.management import call_command

    source = _fairface() / "fairface"
    folder = tmp_path / "faces"
    folder.mkdir()
    lines = ["path,gender"]
    for name in ("fairface_0001.jpg", "fairface_0002.jpg", "fairface_0003.jpg"):
        shutil.copy(source / name, folder / name)
        lines.append(f"{name},female")
    with Image.open(source / "fairface_0002.jpg") as image:
        _all_three(image.convert("RGB"), random.Random(1)).save(folder / "copy.jpg", quality=80)
    lines.append("copy.jpg,female")
    study = make_study()
    faces_import(
        study=study, folder=folder, labels="\n".join(lines).encode(), labels_name="labels.csv"
    )
    faces = {face.original_name: face for face in Face.objects.filter(study=study)}
    Face.objects.filter(study=study).update(crop_print="", near_duplicate_of=None)
    Face.objects.filter(pk=faces["fairface_0003.jpg"].pk).update(
        near_duplicate_of=faces["fairface_0001.jpg"]  # the old rule's false flag
    )
    out = io.StringIO()
    call_command("near_duplicates", study=study.slug, stdout=out)
    assert '"unflagged": 1' in out.getvalue() and '"newly_flagged": 1' in out.getvalue()
    now = {face.original_name: face for face in Face.objects.filter(study=study)}
    assert now["copy.jpg"].near_duplicate_of_id == faces["fairface_0002.jpg"].pk
    assert [name for name, face in now.items() if face.near_duplicate_of_id] == ["copy.jpg"]
    assert all(len(face.crop_print) == 64 for face in now.values())
    # Read back from the stored JPEG crop, a print differs from the import's by a few bits.
    for name in ("fairface_0001.jpg", "fairface_0002.jpg", "fairface_0003.jpg"):
        before, after = hash_int(faces[name].crop_print), hash_int(now[name].crop_print)
        assert hamming(before, after) <= 8, name


@pytest.mark.django_db
def test_recompute_of_an_unknown_study_is_a_clear_error():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="no study 'nope'; existing studies"):
        call_command("near_duplicates", study="nope")
