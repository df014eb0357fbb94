"""Media bytes in and out of storage: what an import writes, the clean-up of files a failed
row left behind, and the reader training and prediction use for crops.

Media are read by name through the storage API (never by local path), so the same code runs
on local disk and on object storage (config.storage).
"""

from __future__ import annotations

import io
import logging

from django.core.files.storage import default_storage
from PIL import Image

from config.storage import storage_read

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


def crop_read(name: str) -> bytes:
    """The bytes of the stored media file `name` (a face crop): the `CropRead` that training
    and prediction hand to modeling.ml. A module-level function, so it pickles into data
    loader workers. A missing file raises FileNotFoundError."""
    return storage_read(default_storage, name)
