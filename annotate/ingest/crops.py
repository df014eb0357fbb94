"""Square face crops with context, at one fixed size, from a detection box."""

from __future__ import annotations

from PIL import Image

from annotate.ingest.detect import Detection

CROP_SIZE = 224
CROP_MARGIN = 0.25  # context added on every side, as a share of the face box's longer side


def square_box(detection: Detection, *, margin: float = CROP_MARGIN) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a square centred on the face, `margin` wider each side.

    May extend past the image; `face_crop` pads the outside with black.
    """
    side = max(detection.w, detection.h) * (1 + 2 * margin)
    cx = detection.x + detection.w / 2
    cy = detection.y + detection.h / 2
    half = side / 2
    return (round(cx - half), round(cy - half), round(cx + half), round(cy + half))


def face_crop(
    image: Image.Image,
    detection: Detection,
    *,
    size: int = CROP_SIZE,
    margin: float = CROP_MARGIN,
) -> Image.Image:
    """The face with context, square, resized to size×size (RGB)."""
    region = image.crop(square_box(detection, margin=margin))
    return region.resize((size, size), Image.Resampling.BILINEAR)


def square_resize(image: Image.Image, *, size: int = CROP_SIZE) -> Image.Image:
    """Centre-crop to a square, then resize: for face sets that arrive already cropped."""
    side = min(image.width, image.height)
    left = (image.width - side) // 2
    top = (image.height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    return square.resize((size, size), Image.Resampling.BILINEAR)
