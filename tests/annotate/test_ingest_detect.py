"""Face detection on real photographs, crops, perceptual hashes."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from annotate.ingest.crops import face_crop, square_box, square_resize
from annotate.ingest.detect import (
    DEFAULT_DETECTOR,
    Detection,
    detection_copy,
    detections_scale,
    detector_make,
)
from annotate.ingest.phash import HashIndex, dhash, hamming, hash_hex, hash_int
from tests.annotate import hostile
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def mtcnn():
    import torch

    torch.set_num_threads(2)
    return detector_make("mtcnn", device="cpu")


@pytest.fixture(scope="module")
def haar():
    return detector_make("haar")


def test_mtcnn_is_the_default():
    assert DEFAULT_DETECTOR == "mtcnn"


@pytest.mark.parametrize(("chosen", "expected"), [("cuda", "cuda"), ("mps", "cpu"), ("cpu", "cpu")])
def test_detection_runs_where_the_one_device_choice_says(monkeypatch, chosen, expected):
    import torch

    from annotate.ingest import detect

    monkeypatch.setattr("modeling.ml.device.device_choose", lambda: torch.device(chosen))
    assert detect._device() == expected


def test_unknown_detector_names_the_valid_ones():
    with pytest.raises(ValueError, match="choose one of: mtcnn, haar"):
        detector_make("yolo")


def test_default_detector_finds_the_one_face_in_the_astronaut_photo(mtcnn):
    (found,) = mtcnn.detect([hostile.astronaut(512)])
    assert len(found) == 1
    face = found[0]
    # Eileen Collins' face lies around x 165-240, y 60-150 in the 512 px photograph.
    assert 140 < face.x + face.w / 2 < 260 and 50 < face.y + face.h / 2 < 160
    assert face.score > 0.95


def test_default_detector_finds_no_face_on_a_cat(mtcnn):
    assert mtcnn.detect([hostile.cat(400)]) == [[]]


def test_mtcnn_batches_images_of_one_size_and_keeps_order(mtcnn):
    a, c = hostile.astronaut(256), hostile.cat(256).resize((256, 256))
    assert [len(found) for found in mtcnn.detect([a, c, a])] == [1, 0, 1]


def test_haar_alternative_finds_the_astronaut_face(haar):
    (found,) = haar.detect([hostile.astronaut(512)])
    assert len(found) == 1


def test_detection_copy_boxes_scale_back_to_the_full_image():
    big = Image.new("RGB", (4000, 2000))
    small, scale = detection_copy(big, max_side=1000)
    assert small.size == (1000, 500) and scale == 4.0
    assert detections_scale([Detection(10, 20, 30, 40, 0.9)], scale) == [
        Detection(40, 80, 120, 160, 0.9)
    ]


def test_square_crop_adds_context_and_has_the_fixed_size():
    detection = Detection(100, 50, 40, 60, 0.99)
    left, top, right, bottom = square_box(detection, margin=0.25)
    assert right - left == bottom - top == 90
    assert (left + right) / 2 == 120 and (top + bottom) / 2 == 80
    crop = face_crop(hostile.astronaut(256), detection, size=224)
    assert crop.size == (224, 224) and crop.mode == "RGB"


def test_crop_near_the_edge_is_padded_not_shifted():
    crop = face_crop(Image.new("RGB", (100, 100), "white"), Detection(0, 0, 40, 40, 1.0), size=60)
    assert crop.getpixel((0, 0)) == (0, 0, 0)
    assert crop.getpixel((59, 59)) == (255, 255, 255)


def test_square_resize_centre_crops():
    assert square_resize(Image.new("RGB", (300, 200)), size=64).size == (64, 64)


def test_dhash_is_stable_under_reencoding_and_far_between_different_images():
    face = hostile.astronaut(224)
    reencoded = Image.open(__import__("io").BytesIO(hostile.encode(face, "JPEG", quality=60)))
    assert hamming(dhash(face), dhash(reencoded)) <= 4
    assert hamming(dhash(face), dhash(hostile.cat(224).resize((224, 224)))) > 12
    assert hash_int(hash_hex(dhash(face))) == dhash(face)
    assert len(hash_hex(dhash(face))) == 16


def test_hash_index_returns_the_nearest_within_the_threshold():
    index = HashIndex([(1, 0b1111), (2, 0)], max_bits=2)
    assert index.nearest(0b0111) == 1
    assert index.nearest(0b1) == 2
    assert index.nearest(0xFFFF) is None


def _fairface_dir() -> Path | None:
    for candidate in ("../shared/data/fairface540", "../../shared/data/fairface540"):
        path = (ROOT / candidate).resolve()
        if (path / "labels.csv").is_file():
            return path
    return None


def test_default_detector_finds_faces_in_real_fairface_crops(mtcnn):
    folder = _fairface_dir()
    if folder is None:
        pytest.skip("FairFace sample not present (../shared/data/fairface540)")
    paths = sorted((folder / "fairface").glob("*.jpg"))[:24]
    images = [Image.open(p).convert("RGB").resize((224, 224)) for p in paths]
    found = mtcnn.detect(images)
    hits = sum(1 for faces in found if faces)
    assert hits >= 22, f"MTCNN found a face in only {hits} of {len(images)} real face crops"


# --- images too small for any face ------------------------------------------------------


@pytest.fixture(scope="module")
def real_face(fairface540) -> Image.Image:
    """A real FairFace crop (a face filling the frame), to be shrunk below the detectors' size."""
    path = sorted((fairface540 / "fairface").glob("*.jpg"))[0]
    return Image.open(path).convert("RGB")


TINY_SIZES = [(5, 5), (19, 19), (19, 300), (300, 12), (1, 1)]


@pytest.mark.parametrize("size", TINY_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", ["mtcnn", "haar"])
def test_an_image_smaller_than_the_smallest_face_has_no_face_and_no_error(
    request, real_face, name, size
):
    detector = request.getfixturevalue(name)
    assert detector.detect([real_face.resize(size)]) == [[]]


def test_tiny_images_in_a_batch_leave_the_others_detected_in_order(mtcnn, real_face):
    tiny, face = real_face.resize((19, 19)), real_face.resize((224, 224))
    found = mtcnn.detect([tiny, face, real_face.resize((5, 5)), face])
    assert [bool(faces) for faces in found] == [False, True, False, True]


@pytest.mark.parametrize("side", [12, 20, 33])
def test_mtcnn_takes_every_image_its_pyramid_can_hold(real_face, side):
    """At the boundary facenet computes in floating point: no size near it crashes."""
    import torch

    torch.set_num_threads(2)
    detector = detector_make("mtcnn", device="cpu", min_face_size=side)
    sizes = [(s, s) for s in range(side - 2, side + 3)]
    assert len(detector.detect([real_face.resize(size) for size in sizes])) == len(sizes)


@pytest.mark.django_db
def test_a_tiny_image_is_imported_and_counted_as_having_no_face(
    tmp_path, media_root, mtcnn, real_face
):
    from annotate.services.ingest import images_import
    from tests.factories import make_study

    folder = tmp_path / "upload"
    folder.mkdir()
    (folder / "tiny.jpg").write_bytes(hostile.encode(real_face.resize((19, 19)), "JPEG"))
    (folder / "face.jpg").write_bytes(hostile.encode(real_face.resize((224, 224)), "JPEG"))
    batch = images_import(study=make_study(), source=folder, detector=mtcnn)
    report = batch.report
    assert batch.status == "succeeded", batch.error
    assert report["rejected"] == 0 and report["rejected_files"] == []
    assert report["imported"] == 2 and report["images_without_faces"] == 1
    assert report["faces_found"] >= 1
