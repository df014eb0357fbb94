"""Import throughput against the bare detector on the same images, in the same run.

Prints one JSON line: images_per_s (the whole import: read, hash, safe decode, detect, crop,
perceptual hash, store files and rows), baseline_images_per_s (a bare loop calling the same
detector on the same, already decoded images) and ratio (goal ≥ 0.9).

Images: "group photos" made of real FairFace face crops when ../shared/data/fairface540 is
present, else scikit-image's real photographs (astronaut, camera, coffee, chelsea, ...).
Runs on a temporary SQLite database and media folder; nothing of the project's data is touched.

    .venv/bin/python bench/ingest.py [--images 16] [--rounds 3] [--detector mtcnn|haar]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAIRFACE = (ROOT / "../shared/data/fairface540/fairface").resolve()


def _collage(paths, rng, cols=4, rows=2, tile=150, gap=30):
    from PIL import Image

    canvas = Image.new(
        "RGB", (cols * (tile + gap) + gap, rows * (tile + gap) + gap), (205, 200, 190)
    )
    for i, path in enumerate(rng.sample(paths, cols * rows)):
        face = Image.open(path).convert("RGB").resize((tile, tile))
        canvas.paste(face, (gap + (i % cols) * (tile + gap), gap + (i // cols) * (tile + gap)))
    return canvas


def make_images(folder: Path, n: int, seed: int = 0) -> str:
    from PIL import Image

    rng = random.Random(seed)
    if FAIRFACE.is_dir():
        paths = sorted(FAIRFACE.glob("*.jpg"))
        source = "fairface collages (8 real faces each)"
        pictures = [_collage(paths, rng) for _ in range(n)]
    else:
        from skimage import data

        photos = [data.astronaut(), data.camera(), data.coffee(), data.chelsea(), data.rocket()]
        source = "scikit-image photographs"
        pictures = []
        for i in range(n):
            image = Image.fromarray(photos[i % len(photos)]).convert("RGB")
            side = rng.choice([384, 448, 512])
            pictures.append(image.resize((side, round(side * image.height / image.width))))
    for i, picture in enumerate(pictures):
        # A tiny distinct mark per file, so no two files share a content hash.
        picture.putpixel((0, 0), (i % 256, (i // 256) % 256, 7))
        picture.save(folder / f"img-{i:04d}.jpg", quality=90)
    return source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--detector", default="mtcnn")
    parser.add_argument("--group", type=int, default=4, help="images measured back to back")
    parser.add_argument("--rounds", type=int, default=3, help="best of N alternating rounds")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: auto)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="facet-bench-ingest-"))
    os.environ["FACET_VAR_DIR"] = str(work / "var")
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["FACET_LOG_LEVEL"] = "WARNING"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    logging.disable(logging.INFO)
    import torch
    from django.core.management import call_command
    from PIL import Image

    from annotate.ingest.detect import detector_make
    from annotate.models import Study
    from annotate.services.ingest import images_import

    torch.set_num_threads(args.threads)
    call_command("migrate", verbosity=0)
    folder = work / "images"
    folder.mkdir()
    source = make_images(folder, args.images)
    files = sorted(folder.glob("*.jpg"))
    options = {"device": args.device} if args.detector == "mtcnn" and args.device else {}
    detector = detector_make(args.detector, **options)
    detector.detect([Image.open(files[0]).convert("RGB")])  # warm-up

    # Small groups of images, each measured both ways back to back, and the best of several
    # rounds: load from other processes on a shared machine then hits both sides alike.
    groups = [files[i : i + args.group] for i in range(0, len(files), args.group)]
    group_dirs = []
    for number, group in enumerate(groups):
        group_dir = work / f"group-{number}"
        group_dir.mkdir()
        for path in group:
            path.rename(group_dir / path.name)
        group_dirs.append((group_dir, [group_dir / path.name for path in group]))
    baseline_s = pipeline_s = float("inf")
    faces_found = baseline_faces = 0
    for round_number in range(args.rounds):
        study = Study.objects.create(slug=f"bench-{round_number}", title="bench")
        round_baseline = round_pipeline = 0.0
        faces_found = baseline_faces = 0
        for group_dir, paths in group_dirs:
            decoded = [Image.open(path).convert("RGB") for path in paths]
            started = time.perf_counter()
            for image in decoded:
                baseline_faces += len(detector.detect([image])[0])
            round_baseline += time.perf_counter() - started
            started = time.perf_counter()
            batch = images_import(study=study, source=group_dir, detector=detector)
            round_pipeline += time.perf_counter() - started
            assert batch.report["imported"] == len(paths), batch.report
            faces_found += batch.report["faces_found"]
        baseline_s = min(baseline_s, round_baseline)
        pipeline_s = min(pipeline_s, round_pipeline)

    images_per_s = len(files) / pipeline_s
    baseline_images_per_s = len(files) / baseline_s
    print(
        json.dumps(
            {
                "images_per_s": round(images_per_s, 3),
                "baseline_images_per_s": round(baseline_images_per_s, 3),
                "ratio": round(images_per_s / baseline_images_per_s, 3),
                "images": len(files),
                "faces_found": faces_found,
                "baseline_faces": baseline_faces,
                "detector": detector.name,
                "device": getattr(detector, "device", "cpu"),
                "source": source,
            }
        )
    )


if __name__ == "__main__":
    main()
