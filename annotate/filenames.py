"""Names of stored media files: random, so a file's name says nothing about it.

Media is served only through views that check who may see each face or image
(annotate.views.media), never by path; the names are unguessable as well, so a leaked or
logged name of one file does not lead to the next one, and a name never reveals the content
hash (two studies importing the same bytes get unrelated names).
"""

from __future__ import annotations

import re
import secrets
from pathlib import PurePosixPath

from django.utils import timezone
from django.utils.deconstruct import deconstructible

SAFE_SUFFIX = re.compile(r"\.[a-z0-9]{1,5}")


@deconstructible
class RandomName:
    """A FileField `upload_to`: `<folder>/<yyyy>/<mm>/<32 random hex digits><suffix>`.

    Only the suffix of the name the caller passes is kept (lower-cased, dropped unless it is
    1-5 letters or digits); the rest of the name is ignored.
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def __call__(self, instance: object, filename: str) -> str:
        suffix = PurePosixPath(filename).suffix.lower()
        if not SAFE_SUFFIX.fullmatch(suffix):
            suffix = ""
        return f"{self.folder}/{timezone.now():%Y/%m}/{secrets.token_hex(16)}{suffix}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RandomName) and other.folder == self.folder

    def __hash__(self) -> int:
        return hash((RandomName, self.folder))
