"""Training in two phases: a head on cached frozen features (with k-fold CV), then optional
fine-tuning of the top block(s). Deterministic by seed; progress through a callback.

The callback receives (stage, fraction of that stage done); it may raise `Cancelled` to stop
the run cooperatively between batches.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from modeling.ml.backbones import Backbone, backbone_build
from modeling.ml.blobs import BlobStore
from modeling.ml.checkpoint import checkpoint_build
from modeling.ml.config import TrainConfig
from modeling.ml.data import CropDataset, CropRead, file_read
from modeling.ml.device import amp_enabled, device_choose, device_describe
from modeling.ml.features import FeatureCache, features_extract
from modeling.ml.folds import folds_assign, labels_check
from modeling.ml.head import Classifier, Head
from modeling.ml.metrics import binary_summary

logger = logging.getLogger(__name__)

STAGE_FEATURES = "features"
STAGE_CV = "cv"
STAGE_FIT = "fit"
STAGE_FINE_TUNE = "fine_tune"
Progress = Callable[[str, float], None]


def _no_progress(stage: str, fraction: float) -> None:
    return None


@dataclass(frozen=True)
class TrainItem:
    key: str  # the crop, as the `read` callable of train_model names it (a path by default)
    content_hash: str
    label: int  # index into classes; 1 is the positive class
    group: Hashable  # near-duplicate group: same group, same fold


@dataclass
class TrainResult:
    checkpoint: dict[str, Any]
    oof_probability: np.ndarray
    fold: np.ndarray
    metrics: dict[str, Any]
    timings: dict[str, float]
    device: str
    cache: dict[str, int] = field(default_factory=dict)


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    return torch.Generator().manual_seed(seed)


MIN_STEPS_PER_EPOCH = 16


def head_batch_size(n: int, largest: int) -> int:
    """At most `largest`, but small enough for MIN_STEPS_PER_EPOCH steps (never below 8), so
    a few hundred faces get as many optimizer steps as ten thousand."""
    return max(1, min(largest, max(8, n // MIN_STEPS_PER_EPOCH)))


def head_fit(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    config: TrainConfig,
    seed: int,
    progress: Callable[[float], None] | None = None,
) -> Head:
    """Train a fresh head on pooled features `x` (N, F) with float targets `y` (N,)."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    with _threads_for(head_batch_size(x.shape[0], config.batch_size) * x.shape[1] * config.hidden):
        return _head_fit(x, y, config=config, seed=seed, generator=generator, progress=progress)


# Below this many multiply-adds per step, one thread beats several (thread start-up and
# barriers dominate; measured on the 2-core CI machine under load).
SMALL_STEP_MACS = 20_000_000


@contextlib.contextmanager
def _threads_for(step_macs: int) -> Iterator[None]:
    before = torch.get_num_threads()
    if step_macs < SMALL_STEP_MACS and before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _head_fit(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    config: TrainConfig,
    seed: int,
    generator: torch.Generator,
    progress: Callable[[float], None] | None,
) -> Head:
    head = Head(x.shape[1], config.hidden)
    head.standardize_from(x)
    head.train()
    optimizer = torch.optim.Adam(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    n = x.shape[0]
    batch_size = head_batch_size(n, config.batch_size)
    for epoch in range(config.epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(head(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
        if progress:
            progress((epoch + 1) / config.epochs)
    head.eval()
    return head


def head_probabilities(head: Head, x: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return torch.sigmoid(head(x)).numpy()


def _fold_progress(
    progress: Callable[[float], None], k: int, folds: int
) -> Callable[[float], None]:
    """Fold k's share of a cross-validation's progress."""
    return lambda f: progress((k + f) / folds)


def cross_validate(
    features: np.ndarray,
    labels: np.ndarray,
    fold: np.ndarray,
    *,
    config: TrainConfig,
    progress: Callable[[float], None],
) -> tuple[np.ndarray, list[dict[str, Any]], list[Head]]:
    """Out-of-fold probabilities for every face, each fold's summary, and each fold's head."""
    x = torch.from_numpy(features)
    y = torch.from_numpy(labels.astype(np.float32))
    oof = np.zeros(len(labels), dtype=np.float64)
    per_fold = []
    heads = []
    for k in range(config.folds):
        held = fold == k
        train_idx = torch.from_numpy(np.flatnonzero(~held))
        test_idx = np.flatnonzero(held)
        head = head_fit(
            x[train_idx],
            y[train_idx],
            config=config,
            seed=config.seed + 1 + k,
            progress=_fold_progress(progress, k, config.folds),
        )
        oof[test_idx] = head_probabilities(head, x[torch.from_numpy(test_idx)])
        per_fold.append(
            {"fold": k, **binary_summary(labels[test_idx], oof[test_idx], config.threshold)}
        )
        heads.append(head)
    return oof, per_fold, heads


def cross_validate_fine_tuned(
    *,
    backbone: Backbone,
    heads: Sequence[Head],
    items: Sequence[TrainItem],
    fold: np.ndarray,
    config: TrainConfig,
    device: torch.device,
    progress: Callable[[float], None],
    read: CropRead = file_read,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Cross-validation of the fine-tuned pipeline: in each fold the fold's head and the top
    blocks are fine-tuned on the other folds only, then predict the held-out faces."""
    labels = np.array([item.label for item in items])
    oof = np.zeros(len(items), dtype=np.float64)
    per_fold = []
    for k in range(config.folds):
        held = np.flatnonzero(fold == k)
        kept = np.flatnonzero(fold != k)
        trunk, head, summary = fine_tune(
            backbone=backbone,
            head=heads[k],
            items=[items[int(i)] for i in kept],
            config=config,
            device=device,
            progress=_fold_progress(progress, k, config.folds),
            read=read,
        )
        oof[held] = classifier_probabilities(
            Classifier(trunk, head),
            [items[int(i)].key for i in held],
            backbone=backbone,
            config=config,
            device=device,
            read=read,
        )
        per_fold.append(
            {
                "fold": k,
                **binary_summary(labels[held], oof[held], config.threshold),
                "best_epoch": summary["best_epoch"],
            }
        )
    return oof, per_fold


def classifier_probabilities(
    model: nn.Module,
    paths: Sequence[str],
    *,
    backbone: Backbone,
    config: TrainConfig,
    device: torch.device,
    read: CropRead = file_read,
) -> np.ndarray:
    """P(positive) for each crop, through the backbone's evaluation preprocessing."""
    loader = DataLoader(
        CropDataset(list(paths), backbone.preprocessing.transform(), read),
        batch_size=config.fine_tune_batch_size,
    )
    logits = _logits(model.to(device), loader, device, config)
    model.to("cpu")
    return torch.sigmoid(logits).numpy().astype(np.float64)


def _split_validation(
    labels: np.ndarray, groups: Sequence[Hashable], *, share: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A stratified, group-respecting train/validation split for early stopping."""
    folds = max(2, round(1 / share))
    assignment = folds_assign(labels, groups, folds=folds, seed=seed + 7919)
    val = assignment == 0
    return np.flatnonzero(~val), np.flatnonzero(val)


def fine_tune(
    *,
    backbone: Backbone,
    head: Head,
    items: Sequence[TrainItem],
    config: TrainConfig,
    device: torch.device,
    progress: Callable[[float], None],
    read: CropRead = file_read,
) -> tuple[nn.Sequential, Head, dict[str, Any]]:
    """Unfreeze the top block(s), train with augmentation and a lower LR, stop early on a
    validation split. Returns the best trunk and head (by validation loss) and a summary."""
    labels = np.array([item.label for item in items])
    train_idx, val_idx = _split_validation(
        labels, [item.group for item in items], share=config.val_share, seed=config.seed
    )
    paths = [item.key for item in items]
    prep = backbone.preprocessing
    generator = torch.Generator().manual_seed(config.seed)
    train_loader = DataLoader(
        Subset(CropDataset(paths, prep.augment(), read), train_idx.tolist()),
        batch_size=config.fine_tune_batch_size,
        shuffle=True,
        generator=generator,
    )
    val_loader = DataLoader(
        Subset(CropDataset(paths, prep.transform(), read), val_idx.tolist()),
        batch_size=config.fine_tune_batch_size,
    )
    model = Classifier(copy.deepcopy(backbone.trunk), copy.deepcopy(head))
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    for param in model.trunk.parameters():
        param.requires_grad_(False)
    top = backbone_top(model.trunk, backbone, config.fine_tune_blocks)
    for block in top:
        for param in block.parameters():
            param.requires_grad_(True)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.fine_tune_lr, weight_decay=1e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_enabled(device))
    loss_fn = nn.BCEWithLogitsLoss()
    y_all = torch.from_numpy(labels.astype(np.float32))
    best = (float("inf"), copy.deepcopy(model.state_dict()), -1)
    history = []
    stale = 0
    steps_per_epoch = max(1, len(train_loader))
    for epoch in range(config.fine_tune_epochs):
        model.eval()
        for block in top:
            block.train()
        # BatchNorm stays in inference mode even in the unfrozen blocks (as Keras' transfer
        # learning guide advises): batch statistics of 16 faces would shift the features the
        # head was fitted on. Its weights still learn.
        for module in model.trunk.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        model.head.train()
        for step, (images, local) in enumerate(train_loader):
            target = y_all[local].to(device)  # Subset yields the dataset's own index
            images = images.to(device)
            if config.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp_enabled(device)):
                loss = loss_fn(model(images).float(), target)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            progress((epoch + (step + 1) / steps_per_epoch) / config.fine_tune_epochs)
        val_loss, val_acc = _evaluate(model, val_loader, y_all[val_idx], device, config)
        history.append({"epoch": epoch + 1, "val_loss": val_loss, "val_accuracy": val_acc})
        logger.info(
            "fine-tune epoch %d: val loss %.4f, accuracy %.3f", epoch + 1, val_loss, val_acc
        )
        if val_loss < best[0] - 1e-4:
            best = (val_loss, copy.deepcopy(model.state_dict()), epoch + 1)
            stale = 0
        else:
            stale += 1
            if stale >= config.patience:
                break
    model.load_state_dict(best[1])
    model = model.to("cpu").to(memory_format=torch.contiguous_format)
    summary = {
        "best_epoch": best[2],
        "best_val_loss": best[0],
        "epochs_run": len(history),
        "history": history,
        "train_faces": int(train_idx.size),
        "val_faces": int(val_idx.size),
        "blocks": config.fine_tune_blocks,
    }
    return model.trunk, model.head, summary


FINE_TUNE_SKIPPED = (
    "Fine-tuning was skipped: it needs at least {need} labeled faces of each class "
    "(have {counts}); the model is the frozen backbone with a trained head."
)


def fine_tune_skip_reason(labels: np.ndarray, config: TrainConfig) -> str | None:
    """Why this labeled set is too small to fine-tune on, or None when it is big enough."""
    counts = np.bincount(labels, minlength=2)
    if counts.min() >= config.fine_tune_min_per_class:
        return None
    return FINE_TUNE_SKIPPED.format(need=config.fine_tune_min_per_class, counts=counts.tolist())


# Relative cost of each stage per face, measured on the 2-core CPU with EfficientNet-Lite0 at
# 224 px: a forward pass for features is 1; a fine-tuning epoch (augmented forward, backward
# through the top blocks, validation) is about 1.6; heads on cached features are nearly free.
STAGE_COST = {STAGE_FEATURES: 1.0, STAGE_CV: 0.05, STAGE_FIT: 0.01, STAGE_FINE_TUNE: 1.6}


def stage_weights(config: TrainConfig) -> dict[str, float]:
    """Share of a run's work in each stage (sums to 1), so progress can be weighted by
    stage instead of restarting at 0 % in each."""
    work = {
        STAGE_FEATURES: STAGE_COST[STAGE_FEATURES],
        STAGE_CV: STAGE_COST[STAGE_CV] * config.folds,
        STAGE_FIT: STAGE_COST[STAGE_FIT],
    }
    if config.fine_tune:
        work[STAGE_FINE_TUNE] = (
            STAGE_COST[STAGE_FINE_TUNE] * config.fine_tune_epochs * (config.folds + 1)
        )
    total = sum(work.values())
    return {stage: cost / total for stage, cost in work.items()}


def backbone_top(trunk: nn.Sequential, backbone: Backbone, n: int) -> list[nn.Module]:
    from modeling.ml.backbones import backbone_spec

    return backbone_spec(backbone.name).blocks(trunk)[-n:]


def _logits(
    model: nn.Module,
    loader: DataLoader[tuple[torch.Tensor, int]],
    device: torch.device,
    config: TrainConfig,
) -> torch.Tensor:
    """The model's logits for every image of `loader`, in order, in evaluation mode."""
    model.eval()
    logits = []
    with torch.inference_mode():
        for images, _ in loader:
            images = images.to(device)
            if config.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp_enabled(device)):
                logits.append(model(images).float().cpu())
    return torch.cat(logits)


def _evaluate(
    model: nn.Module,
    loader: DataLoader[tuple[torch.Tensor, int]],
    targets: torch.Tensor,
    device: torch.device,
    config: TrainConfig,
) -> tuple[float, float]:
    out = _logits(model, loader, device, config)
    loss = float(nn.functional.binary_cross_entropy_with_logits(out, targets))
    acc = float(((torch.sigmoid(out) >= config.threshold).float() == targets).float().mean())
    return loss, acc


def train_model(
    *,
    config: TrainConfig,
    items: Sequence[TrainItem],
    classes: Sequence[str],
    cache: BlobStore,
    read: CropRead = file_read,
    weights_file: str | os.PathLike[str] | None = None,
    download: bool = True,
    progress: Progress | None = None,
) -> TrainResult:
    """Features (cached) → k-fold CV of the head → final fit → optional fine-tune.

    Raises TrainingDataError for unusable labels before any image is read, WeightsMissing
    when pretrained weights cannot be found, Cancelled when the callback asks to stop.
    """
    progress = progress or _no_progress
    labels = np.array([item.label for item in items], dtype=int)
    labels_check(labels, folds=config.folds, classes=classes)
    fold = folds_assign(
        labels, [item.group for item in items], folds=config.folds, seed=config.seed
    )
    seed_everything(config.seed)
    device = device_choose(config.device)
    timings: dict[str, float] = {}

    started = time.perf_counter()
    backbone = backbone_build(
        name=config.backbone,
        weights=config.weights,
        seed=config.seed,
        image_size=config.image_size,
        weights_file=weights_file,
        download=download,
    )
    feature_cache = FeatureCache(
        cache,
        backbone=backbone.name,
        weights_id=backbone.weights_id,
        preprocessing=backbone.preprocessing.key(),
        dim=backbone.features,
    )
    progress(STAGE_FEATURES, 0.0)
    features, stats = features_extract(
        backbone=backbone,
        keys=[item.key for item in items],
        content_hashes=[item.content_hash for item in items],
        cache=feature_cache,
        read=read,
        device=device,
        batch_size=config.extract_batch_size,
        channels_last=config.channels_last,
        progress=lambda f: progress(STAGE_FEATURES, f),
    )
    backbone.trunk = backbone.trunk.to("cpu").to(memory_format=torch.contiguous_format)
    timings["features_s"] = time.perf_counter() - started

    started = time.perf_counter()
    progress(STAGE_CV, 0.0)
    oof, per_fold, fold_heads = cross_validate(
        features, labels, fold, config=config, progress=lambda f: progress(STAGE_CV, f)
    )
    timings["cv_s"] = time.perf_counter() - started

    started = time.perf_counter()
    progress(STAGE_FIT, 0.0)
    x = torch.from_numpy(features)
    head = head_fit(
        x,
        torch.from_numpy(labels.astype(np.float32)),
        config=config,
        seed=config.seed,
        progress=lambda f: progress(STAGE_FIT, f),
    )
    train_summary = binary_summary(labels, head_probabilities(head, x), config.threshold)
    timings["fit_s"] = time.perf_counter() - started

    trunk: nn.Sequential = backbone.trunk
    cv = {**binary_summary(labels, oof, config.threshold), "folds": config.folds}
    metrics: dict[str, Any] = {"cv": {**cv, "per_fold": per_fold}, "train": train_summary}
    fine_tune_summary = None
    skip = fine_tune_skip_reason(labels, config)
    if config.fine_tune and skip:
        fine_tune_summary = {"skipped": skip}
    elif config.fine_tune:
        started = time.perf_counter()
        progress(STAGE_FINE_TUNE, 0.0)
        # One fine-tuning per fold for honest CV, then one for the deployed model.
        share_cv = config.folds / (config.folds + 1)
        oof, tuned_per_fold = cross_validate_fine_tuned(
            backbone=backbone,
            heads=fold_heads,
            items=items,
            fold=fold,
            config=config,
            device=device,
            progress=lambda f: progress(STAGE_FINE_TUNE, f * share_cv),
            read=read,
        )
        trunk, head, fine_tune_summary = fine_tune(
            backbone=backbone,
            head=head,
            items=items,
            config=config,
            device=device,
            progress=lambda f: progress(STAGE_FINE_TUNE, share_cv + f * (1 - share_cv)),
            read=read,
        )
        # The card's CV is that of what is deployed: the fine-tuned pipeline. The frozen
        # head's CV stays beside it for comparison.
        metrics["cv_frozen"] = metrics["cv"]
        metrics["cv"] = {
            **binary_summary(labels, oof, config.threshold),
            "folds": config.folds,
            "per_fold": tuned_per_fold,
            "fine_tuned": True,
        }
        timings["fine_tune_s"] = time.perf_counter() - started
    metrics["fine_tune"] = fine_tune_summary
    metrics["threshold"] = config.threshold
    metrics["weights"] = {
        "backbone": backbone.name,
        "identifier": backbone.weights_id,
        "sha256": backbone.weights_sha256,
        "source": backbone.weights_source,
        "preprocessing": backbone.preprocessing.to_dict(),
    }
    checkpoint = checkpoint_build(
        backbone=backbone,
        trunk=trunk,
        head=head,
        config=config.to_dict(),
        classes=list(classes),
        threshold=config.threshold,
        metrics=metrics,
    )
    return TrainResult(
        checkpoint=checkpoint,
        oof_probability=oof,
        fold=fold,
        metrics=metrics,
        timings=timings,
        device=device_describe(device),
        cache={"hits": stats.hits, "misses": stats.misses},
    )
