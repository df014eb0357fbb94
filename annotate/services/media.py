"""The display copy of a source image: what a browser is shown instead of the upload itself.

Uploads may be formats browsers cannot show (TIFF, BMP) and carry metadata (EXIF with GPS
position and camera owner, XMP, comments). The display copy is a JPEG of the decoded image,
orientation applied and metadata dropped (annotate.ingest.images.image_open), stored beside
the original so the web server can send it like any other file.
"""

from __future__ import annotations

import logging

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from annotate.ingest.images import image_open
from annotate.models import SourceImage
from annotate.services.storage import jpeg_bytes

logger = logging.getLogger(__name__)


def source_display_ensure(*, image: SourceImage) -> str:
    """The storage name of `image`'s display copy, made and saved on first need.

    Raises ImageRejected or OSError when the original is missing or unreadable. Two requests
    racing to make the copy both encode it; the first to save wins, the other deletes its
    file and returns the winner's, so `display` is written once and never changes.
    """
    if image.display.name:
        return image.display.name
    with image.file.open("rb") as handle:
        opened = image_open(handle.read())
    image.display.save("display.jpg", ContentFile(jpeg_bytes(opened.image)), save=False)
    made = image.display.name
    assert made is not None  # save() named the file
    won = SourceImage.objects.filter(pk=image.pk, display="").update(display=made)
    if not won:
        default_storage.delete(made)
        image.refresh_from_db(fields=["display"])
    else:
        logger.info("made the display copy of source image %s", image.pk)
    assert image.display.name is not None  # ours, or the copy that won
    return image.display.name
