"""Face-detector evidence on real photographs: how many faces each detector finds vs expected.

Prints one JSON line per run with, for each detector (mtcnn, haar):
- photos: scikit-image's real photographs with a known number of faces (astronaut 1,
  camera 1; coffee, chelsea (cat), horse, rocket, ... 0), found vs expected and false hits;
- fairface_crops: share of real FairFace face crops (224 px) with at least one face found;
- group_photos: collages of 8 real FairFace faces each; a face counts as found when a box's
  centre falls in the middle half of its tile and the box is at least a third of the tile;
  boxes centred on the background count as false positives.
FairFace parts are skipped (null) when ../shared/data/fairface540 is absent.

    .venv/bin/python bench/detectors.py [--crops 100] [--groups 10]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAIRFACE = (ROOT / "../shared/data/fairface540/fairface").resolve()
TILE, GAP, COLS, ROWS = 150, 30, 4, 2


def photos():
    from skimage import data

    expected = {"astronaut": 1, "camera": 1}
    for name in ("coffee", "chelsea", "horse", "rocket", "hubble_deep_field", "retina", "brick"):
        expected[name] = 0
    return [(name, getattr(data, name)(), n) for name, n in expected.items()]


def collage(paths, rng):
    from PIL import Image

    canvas = Image.new(
        "RGB", (COLS * (TILE + GAP) + GAP, ROWS * (TILE + GAP) + GAP), (205, 200, 190)
    )
    tiles = []
    for i, path in enumerate(rng.sample(paths, COLS * ROWS)):
        x, y = GAP + (i % COLS) * (TILE + GAP), GAP + (i // COLS) * (TILE + GAP)
        canvas.paste(Image.open(path).convert("RGB").resize((TILE, TILE)), (x, y))
        tiles.append((x, y))
    return canvas, tiles


def score_collage(found, tiles):
    hit, false_positive = set(), 0
    for box in found:
        cx, cy = box.x + box.w / 2, box.y + box.h / 2
        owner = None
        for index, (x, y) in enumerate(tiles):
            if x <= cx <= x + TILE and y <= cy <= y + TILE:
                owner = index
                central = (
                    abs(cx - (x + TILE / 2)) <= TILE / 4 and abs(cy - (y + TILE / 2)) <= TILE / 4
                )
                if central and max(box.w, box.h) >= TILE / 3:
                    hit.add(index)
        if owner is None:
            false_positive += 1
    return len(hit), false_positive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, default=100)
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch
    from PIL import Image

    from annotate.ingest.detect import detector_make
    from annotate.ingest.images import image_from_array

    torch.set_num_threads(args.threads)
    rng = random.Random(0)
    real = [(name, image_from_array(array), n) for name, array, n in photos()]
    crops = groups = None
    if FAIRFACE.is_dir():
        paths = sorted(FAIRFACE.glob("*.jpg"))
        crops = [
            Image.open(p).convert("RGB").resize((224, 224))
            for p in rng.sample(paths, min(args.crops, len(paths)))
        ]
        groups = [collage(paths, rng) for _ in range(args.groups)]
    result = {}
    for name in ("mtcnn", "haar"):
        detector = detector_make(name)
        started = time.perf_counter()
        figures = {}
        per_photo = {photo: len(detector.detect([image])[0]) for photo, image, _ in real}
        figures["photos"] = {
            "found": sum(min(per_photo[p], n) for p, _, n in real),
            "expected": sum(n for _, _, n in real),
            "false_hits": sum(max(0, per_photo[p] - n) for p, _, n in real),
            "per_photo": per_photo,
        }
        if crops is not None:
            found = detector.detect(crops)
            figures["fairface_crops"] = {
                "with_face": sum(1 for faces in found if faces),
                "crops": len(crops),
            }
            hits = fps = 0
            for (_image, tiles), faces in zip(
                groups, detector.detect([g for g, _ in groups]), strict=True
            ):
                h, f = score_collage(faces, tiles)
                hits, fps = hits + h, fps + f
            figures["group_photos"] = {
                "found": hits,
                "expected": len(groups) * COLS * ROWS,
                "false_positives": fps,
            }
        else:
            figures["fairface_crops"] = figures["group_photos"] = None
        figures["seconds"] = round(time.perf_counter() - started, 1)
        result[name] = figures
    print(json.dumps(result))


if __name__ == "__main__":
    main()
