"""Bytes an import writes to storage, and the clean-up of files a failed row left behind."""

from __future__ import annotations

import io
import logging

from django.core.files.storage import default_storage
from PIL import Image

logger = logging.getLogger(__name__)


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def files_delete(names: list[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except Exception:  # the row is gone either way; an orphan file is logged, not fatal
            logger.warning("could not delete %s after a failed import", name, exc_info=True)
