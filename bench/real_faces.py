"""Transfer learning on real faces: weights=none vs the shipped ImageNet backbone, frozen and
fine-tuned, on the same folds.

Prints ONE JSON line: faces, backbone, cv_acc_scratch, cv_acc_frozen, cv_acc_finetune,
cv_acc_by_age (for the best of the three), best, train_s_scratch, train_s_frozen,
train_s_finetune, device.
- scratch: the same network with random weights (weights 'none'), frozen, head trained.
- frozen: ImageNet weights, frozen trunk, the seed's head (k-fold CV on cached features).
- finetune: the frozen model's top block(s) fine-tuned with augmentation and early stopping,
  cross-validated honestly (fine-tuned again inside every fold).
Every variant uses the same seeded, stratified folds. Data: ../shared/data/fairface540 (540
real FairFace crops, CC BY 4.0) or `--faces DIR --labels CSV` (columns path, gender[, age]).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from modeling.evaluation import accuracy_by_group  # noqa: E402
from modeling.ml.blobs import DirectoryStore  # noqa: E402
from modeling.ml.config import TrainConfig  # noqa: E402
from modeling.ml.train import TrainItem, train_model  # noqa: E402

FAIRFACE = ROOT.parent / "shared" / "data" / "fairface540"
CLASSES = ["male", "female"]


def labeled_faces(folder: Path, labels: Path) -> tuple[list[TrainItem], list[str]]:
    """TrainItems (label 1 = female) and each face's age band, from a labels CSV."""
    items, ages = [], []
    with labels.open(newline="", encoding="utf-8-sig") as handle:
        for row in csv.DictReader(handle):
            gender = (row.get("gender") or "").strip().lower()
            if gender not in CLASSES:
                continue
            path = folder / row["path"]
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            # Distinct people: each face is its own near-duplicate group.
            items.append(TrainItem(str(path), digest, CLASSES.index(gender), row["path"]))
            ages.append((row.get("age") or "").strip())
    return items, ages


def _age_key(band: str) -> tuple[int, str]:
    """Young to old: '3-9' before '10-19', '70+' last."""
    digits = band.split("-")[0].rstrip("+")
    return (int(digits) if digits.isdigit() else 999, band)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=FAIRFACE)
    parser.add_argument("--labels", type=Path)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--fine-tune-blocks", type=int, default=TrainConfig.fine_tune_blocks)
    parser.add_argument("--fine-tune-epochs", type=int, default=TrainConfig.fine_tune_epochs)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip-finetune", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    labels = args.labels or args.faces / "labels.csv"
    if not labels.is_file():
        parser.error(f"no labels file at {labels}; give --faces DIR --labels CSV")
    items, ages = labeled_faces(args.faces, labels)
    y = np.array([item.label for item in items])
    base = {"backbone": args.backbone, "folds": args.folds, "device": args.device}
    variants = {
        "scratch": TrainConfig(**base, weights="none"),
        "frozen": TrainConfig(**base, weights="default"),
        "finetune": TrainConfig(
            **base,
            weights="default",
            fine_tune=True,
            fine_tune_blocks=args.fine_tune_blocks,
            fine_tune_epochs=args.fine_tune_epochs,
        ),
    }
    if args.skip_finetune:
        del variants["finetune"]
    out: dict = {"faces": len(items), "backbone": args.backbone}
    oof = {}
    with tempfile.TemporaryDirectory() as work:
        for name, config in variants.items():
            started = time.perf_counter()
            # A fresh cache per variant: each timing includes its own feature extraction.
            result = train_model(
                config=config, items=items, classes=CLASSES, cache=DirectoryStore(Path(work) / name)
            )
            out[f"train_s_{name}"] = round(time.perf_counter() - started, 1)
            out[f"cv_acc_{name}"] = round(result.metrics["cv"]["accuracy"], 4)
            oof[name] = (result.oof_probability >= config.threshold).astype(int)
            out["device"] = result.device
    best = max(oof, key=lambda name: out[f"cv_acc_{name}"])
    frame = pd.DataFrame(
        {
            "truth": [CLASSES[v] for v in y],
            "predicted": [CLASSES[v] for v in oof[best]],
            "age": ages,
        }
    )
    by_age = accuracy_by_group(frame, attributes=["age"], intersections=False, min_n=1)
    out["best"] = best
    rows = sorted(by_age.iloc[1:].itertuples(), key=lambda row: _age_key(row.group))
    out["cv_acc_by_age"] = {row.group: round(float(row.accuracy), 3) for row in rows}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
