"""Drawing a face's box on its source image (for the face-source view)."""

from __future__ import annotations

from PIL import Image, ImageDraw

SOURCE_MAX_SIDE = 1600
BOX_COLOUR = (255, 196, 0)


def box_draw(
    image: Image.Image,
    box: tuple[int, int, int, int] | None,
    *,
    max_side: int = SOURCE_MAX_SIDE,
) -> Image.Image:
    """A copy of `image`, at most `max_side` px, with `box` (x, y, w, h) outlined."""
    scale = min(1.0, max_side / max(image.size))
    picture = image.convert("RGB")
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        picture = picture.resize(size, Image.Resampling.BILINEAR)
    else:
        picture = picture.copy()
    if box is not None:
        x, y, w, h = (v * scale for v in box)
        width = max(2, round(max(picture.size) / 300))
        draw = ImageDraw.Draw(picture)
        draw.rectangle((x, y, x + w, y + h), outline=(0, 0, 0), width=width + 2)
        draw.rectangle((x, y, x + w, y + h), outline=BOX_COLOUR, width=width)
    return picture
