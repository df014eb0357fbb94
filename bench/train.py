"""Training benchmark: feature extraction vs. head retraining on cached features.

Prints ONE JSON line: faces, feature_extract_s, head_retrain_s, cv_folds, uncached_epoch_s,
speedup.
- feature_extract_s: first run, every face's backbone features computed (cache empty).
- head_retrain_s: second run of the same training (k-fold CV + final fit) with every feature
  read from the on-disk cache — what an admin's retrain costs after adding labels.
- uncached_epoch_s: one epoch of frozen-backbone training without the cache (every crop
  decoded and pushed through the backbone, head trained on the batch), measured here.
- speedup: (uncached_epoch_s × epochs × (folds + 1)) / head_retrain_s, i.e. the same retrain
  (CV + final fit, same epochs) without the cache, against the cached one.
Goal: head_retrain_s ≤ 30 s for 10,000 cached faces (ResNet-50, 2048-d) on the 2-core CPU.
`--image-size 64` makes extraction of many faces affordable on a CPU; it does not change the
head's work (the features stay 2048-d).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from _crops import crops_write  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from modeling.ml.backbones import backbone_build  # noqa: E402
from modeling.ml.blobs import DirectoryStore  # noqa: E402
from modeling.ml.config import TrainConfig  # noqa: E402
from modeling.ml.data import CropDataset  # noqa: E402
from modeling.ml.device import device_choose  # noqa: E402
from modeling.ml.head import Head, pooled  # noqa: E402
from modeling.ml.train import TrainItem, train_model  # noqa: E402


def uncached_epoch(config: TrainConfig, items: list[TrainItem]) -> float:
    """One epoch of frozen-backbone training straight from the crop files."""
    device = device_choose(config.device)
    backbone = backbone_build(
        name=config.backbone, weights=config.weights, seed=config.seed, image_size=config.image_size
    )
    trunk = backbone.trunk.to(device).eval()
    if config.channels_last:
        trunk = trunk.to(memory_format=torch.channels_last)
    head = Head(backbone.features, config.hidden).to(device)
    optimizer = torch.optim.Adam(head.parameters(), lr=config.lr)
    loss_fn = nn.BCEWithLogitsLoss()
    labels = torch.tensor([float(i.label) for i in items])
    loader = DataLoader(
        CropDataset([i.key for i in items], backbone.preprocessing.transform()),
        batch_size=config.extract_batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    started = time.perf_counter()
    for images, index in loader:
        images = images.to(device)
        if config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            feats = pooled(trunk, images)
        optimizer.zero_grad()
        loss = loss_fn(head(feats), labels[index].to(device))
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=300)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--weights", default="none")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None, help="Keep crops/cache here.")
    parser.add_argument("--skip-uncached", action="store_true", help="Estimate from extraction.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="facet-bench-train-") as tmp:
        run(args, args.workdir or Path(tmp))


def run(args: argparse.Namespace, work: Path) -> None:
    cache = DirectoryStore(work / "feature-cache")
    items = [TrainItem(p, h, lab, g) for p, h, lab, g in crops_write(work / "crops", args.faces)]
    config = TrainConfig(
        backbone=args.backbone,
        weights=args.weights,
        image_size=args.image_size,
        folds=args.folds,
        epochs=args.epochs,
    )
    classes = ["male", "female"]
    started = time.perf_counter()
    first = train_model(config=config, items=items, classes=classes, cache=cache)
    first_total = time.perf_counter() - started
    started = time.perf_counter()
    second = train_model(config=config, items=items, classes=classes, cache=cache)
    head_retrain_s = time.perf_counter() - started
    assert second.cache["misses"] == 0, second.cache
    skip = args.skip_uncached
    epoch_s = first.timings["features_s"] if skip else uncached_epoch(config, items)
    speedup = epoch_s * config.epochs * (config.folds + 1) / head_retrain_s
    print(
        json.dumps(
            {
                "faces": len(items),
                "feature_extract_s": round(first.timings["features_s"], 2),
                "head_retrain_s": round(head_retrain_s, 2),
                "cv_folds": config.folds,
                "uncached_epoch_s": round(epoch_s, 2),
                "speedup": round(speedup, 1),
            }
        )
    )
    logging.getLogger("bench").info(
        "first run %.1fs, cv acc %.3f", first_total, first.metrics["cv"]["accuracy"]
    )


if __name__ == "__main__":
    main()
