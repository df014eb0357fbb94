"""Opening untrusted image files: every hostile shape is refused with its reason or made RGB."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from annotate.ingest.images import (
    NOTE_ANIMATED,
    NOTE_ROTATED,
    REJECT_CORRUPT,
    REJECT_EMPTY,
    REJECT_NOT_IMAGE,
    ImageLimits,
    ImageRejected,
    image_open,
)
from tests.annotate import hostile


def _reason(data: bytes, **limits) -> str:
    with pytest.raises(ImageRejected) as caught:
        image_open(data, limits=ImageLimits(**limits))
    return caught.value.reason


def test_a_good_jpeg_opens_as_rgb_with_its_size():
    opened = image_open(hostile.good_jpeg(200))
    assert (opened.image.mode, opened.width, opened.height, opened.format) == (
        "RGB",
        200,
        200,
        "JPEG",
    )
    assert opened.notes == ()


def test_zero_byte_file_is_refused_as_empty():
    assert _reason(b"") == REJECT_EMPTY


def test_text_with_a_jpg_extension_is_refused_as_not_an_image():
    assert _reason(hostile.html_as_jpeg()) == REJECT_NOT_IMAGE


def test_truncated_jpeg_is_refused_at_full_decode():
    reason = _reason(hostile.truncated_jpeg())
    assert reason.startswith(REJECT_CORRUPT.split("{")[0])
    assert "truncated" in reason


def test_corrupt_png_is_refused():
    assert _reason(hostile.corrupt_png()).startswith(REJECT_CORRUPT.split("{")[0])


def test_decompression_bomb_is_refused_from_the_header_before_decoding():
    reason = _reason(hostile.png_claiming(9_000, 9_000), max_pixels=40_000_000)
    assert reason.startswith("decompression bomb refused: 9000×9000 = 81,000,000 pixels")


def test_decompression_bomb_far_above_pillows_own_limit_is_refused_too():
    reason = _reason(hostile.png_claiming(30_000, 30_000))
    assert reason.startswith("decompression bomb refused:")


def test_huge_side_is_refused_even_below_the_pixel_limit():
    reason = _reason(hostile.png_claiming(20_000, 10), max_side=12_000)
    assert reason.startswith("image too large: 20000×10")


@pytest.mark.parametrize(
    "maker,mode",
    [
        (hostile.cmyk_jpeg, "CMYK"),
        (hostile.palette_png, "P"),
        (hostile.alpha_png, "RGBA"),
        (hostile.la_png, "LA"),
        (hostile.grey16_png, "I;16"),
    ],
    ids=["cmyk", "palette", "alpha", "la", "16-bit"],
)
def test_other_colour_modes_become_rgb(maker, mode):
    opened = image_open(maker())
    assert opened.image.mode == "RGB"
    assert opened.notes == (f"converted from {mode} to RGB",)
    # The content survives the conversion: the picture is not blank or black.
    extrema = opened.image.convert("L").getextrema()
    assert extrema[1] - extrema[0] > 100


def test_sixteen_bit_grey_is_scaled_not_clipped_to_white():
    opened = image_open(hostile.grey16_png())
    original = np.asarray(hostile.astronaut().convert("L"), dtype=int)
    assert np.abs(np.asarray(opened.image.convert("L"), dtype=int) - original).max() <= 1


def test_exif_orientation_is_applied():
    opened = image_open(hostile.rotated_with_exif(6))
    assert NOTE_ROTATED.format(orientation=6) in opened.notes
    upright = np.asarray(hostile.astronaut().crop((0, 0, 256, 192)).convert("L"), dtype=int)
    turned = np.asarray(opened.image.convert("L"), dtype=int)
    assert turned.shape == upright.shape
    assert np.abs(turned - upright).mean() < 8  # JPEG noise only


def test_animated_gif_gives_its_first_frame():
    opened = image_open(hostile.animated_gif(3))
    assert NOTE_ANIMATED.format(frames=3) in opened.notes
    assert opened.image.mode == "RGB"
    assert opened.image.size == hostile.astronaut().size


def test_formats_outside_the_list_are_refused():
    data = hostile.encode(Image.new("RGB", (8, 8)), "PPM")
    assert _reason(data).startswith("image format PPM is not accepted")
