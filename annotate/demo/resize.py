"""Make the shipped copy of the FairFace sample: every face listed in labels.csv at 224 px.

    python annotate/demo/resize.py ../shared/data/fairface540 annotate/demo/fairface224

Reads SOURCE/labels.csv (path,gender,race,age) and writes each listed image, resized to
SIZE × SIZE (Lanczos) and saved as JPEG quality 90, at the same relative path under DEST,
then copies labels.csv and LICENSE unchanged. Same source and Pillow version, same bytes.
Plain Python (Pillow only), so it runs without Django or a database.
"""

from __future__ import annotations

import argparse
import csv
import logging
import shutil
import sys
from pathlib import Path

from PIL import Image

logger = logging.getLogger(__name__)

SIZE = 224
QUALITY = 90
COPIED = ("labels.csv", "LICENSE")
MISSING_FILE = "{path} is missing; the source folder needs labels.csv, LICENSE and the images."
NOT_SQUARE = "{path} is {width}×{height}; only square face crops are resized (no cropping here)."


class SourceError(ValueError):
    """The source folder is not a labeled face sample this script can copy."""


def sample_resize(*, source: Path, dest: Path, size: int = SIZE, quality: int = QUALITY) -> int:
    """Write the resized sample to `dest`; return the number of images written.

    Every problem is found before anything is written, so a bad source leaves `dest` as it was.
    """
    for name in COPIED:
        if not (source / name).is_file():
            raise SourceError(MISSING_FILE.format(path=source / name))
    with (source / "labels.csv").open(newline="", encoding="utf-8") as handle:
        paths = [row["path"] for row in csv.DictReader(handle)]
    for relative in paths:
        path = source / relative
        if not path.is_file():
            raise SourceError(MISSING_FILE.format(path=path))
        with Image.open(path) as image:
            if image.width != image.height:
                raise SourceError(
                    NOT_SQUARE.format(path=path, width=image.width, height=image.height)
                )
    for relative in paths:
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(source / relative) as image:
            small = image.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
        small.save(target, format="JPEG", quality=quality, optimize=True)
    for name in COPIED:
        shutil.copyfile(source / name, dest / name)
    return len(paths)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="Folder with labels.csv, LICENSE and images.")
    parser.add_argument("dest", type=Path, help="Folder to write the resized copy into.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        written = sample_resize(source=args.source, dest=args.dest)
    except SourceError as exc:
        logger.error("%s", exc)
        return 2
    logger.info("%d images at %d px written to %s", written, SIZE, args.dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
