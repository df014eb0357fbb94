"""GPU benchmark: training and prediction on CUDA with mixed precision and channels_last.

Prints ONE JSON line: device, backbone, batch_size, train_images_per_s (full forward +
backward + optimizer step, every layer trainable, AMP float16 + GradScaler, channels_last),
fine_tune_images_per_s (Facet's fine-tuning of the top block via modeling.ml.train, from
crop files), predict_images_per_s (inference on preloaded tensors) and
pipeline_predict_images_per_s (Facet's batch prediction from crop files).
Exits with status 2 and a message when no CUDA device is present.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from _crops import crops_write  # noqa: E402
from torch import nn  # noqa: E402

NO_CUDA = (
    "bench/gpu.py needs a CUDA GPU; none is visible here (torch.cuda.is_available() is False)."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--faces", type=int, default=2000, help="Crop files for the pipelines.")
    parser.add_argument("--num-workers", type=int, default=min(8, os.cpu_count() or 1))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        sys.exit(2)
    from modeling.ml.backbones import backbone_build
    from modeling.ml.blobs import DirectoryStore
    from modeling.ml.checkpoint import checkpoint_save
    from modeling.ml.config import TrainConfig
    from modeling.ml.head import Classifier, Head
    from modeling.ml.predict import classifier_load, probabilities_iter
    from modeling.ml.train import TrainItem, train_model

    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    backbone = backbone_build(name=args.backbone, weights="none", seed=0)
    model = Classifier(backbone.trunk, Head(backbone.features)).to(device)
    model = model.to(memory_format=torch.channels_last)
    images = torch.randn(args.batch_size, 3, 224, 224, device=device).contiguous(
        memory_format=torch.channels_last
    )
    target = torch.randint(0, 2, (args.batch_size,), device=device).float()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda")
    loss_fn = nn.BCEWithLogitsLoss()

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.float16):
            loss = loss_fn(model(images).float(), target)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    model.train()
    for _ in range(5):
        train_step()
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(args.steps):
        train_step()
    torch.cuda.synchronize()
    train_ips = args.steps * args.batch_size / (time.perf_counter() - started)

    model.eval()
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
        for _ in range(5):
            model(images)
        torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(args.steps):
            model(images)
        torch.cuda.synchronize()
    predict_ips = args.steps * args.batch_size / (time.perf_counter() - started)

    work = Path(tempfile.mkdtemp(prefix="facet-bench-gpu-"))
    crops = crops_write(work / "crops", args.faces)
    items = [TrainItem(p, h, lab, g) for p, h, lab, g in crops]
    config = TrainConfig(
        backbone=args.backbone,
        weights="none",
        fine_tune=True,
        fine_tune_epochs=1,
        fine_tune_batch_size=64,
        extract_batch_size=128,
        device="cuda",
    )
    result = train_model(
        config=config, items=items, classes=["male", "female"], cache=DirectoryStore(work / "cache")
    )
    fine_tune = result.metrics["fine_tune"]
    fine_tune_ips = (
        fine_tune["train_faces"] * fine_tune["epochs_run"] / result.timings["fine_tune_s"]
    )
    extract_ips = len(items) / result.timings["features_s"]
    checkpoint_save(result.checkpoint, work / "model.pt")
    classifier = classifier_load(work / "model.pt", device=device)
    paths = [c[0] for c in crops]
    for _ in probabilities_iter(classifier, paths[:256], batch_size=args.batch_size):
        pass
    started = time.perf_counter()
    for _ in probabilities_iter(
        classifier, paths, batch_size=args.batch_size, num_workers=args.num_workers
    ):
        pass
    torch.cuda.synchronize()
    pipeline_ips = len(paths) / (time.perf_counter() - started)
    print(
        json.dumps(
            {
                "device": torch.cuda.get_device_name(device),
                "backbone": args.backbone,
                "batch_size": args.batch_size,
                "train_images_per_s": round(train_ips, 1),
                "predict_images_per_s": round(predict_ips, 1),
                "fine_tune_images_per_s": round(fine_tune_ips, 1),
                "feature_extract_images_per_s": round(extract_ips, 1),
                "pipeline_predict_images_per_s": round(pipeline_ips, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
