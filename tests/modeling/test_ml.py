"""The pure torch core: registry, head, folds, feature cache, weights, checkpoints, training."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from annotate.synthetic import draw_face, face_specs
from modeling.ml.backbones import BACKBONES, backbone_build, backbone_spec
from modeling.ml.blobs import DirectoryStore
from modeling.ml.checkpoint import checkpoint_load, checkpoint_save
from modeling.ml.config import TrainConfig
from modeling.ml.device import device_choose
from modeling.ml.errors import CheckpointError, TrainingDataError, WeightsMissing
from modeling.ml.features import FeatureCache, features_extract
from modeling.ml.folds import folds_assign, labels_check
from modeling.ml.head import Head
from modeling.ml.metrics import binary_summary
from modeling.ml.predict import classifier_load, probabilities_iter
from modeling.ml.train import TrainItem, train_model
from tests.modeling.conftest import TINY

CLASSES = ["male", "female"]


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> list[TrainItem]:
    folder = tmp_path_factory.mktemp("crops")
    items = []
    for spec in face_specs(60, seed=11):
        path = folder / f"{spec.index}.jpg"
        draw_face(spec, seed=11).save(path, format="JPEG")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        items.append(TrainItem(str(path), digest, int(spec.gender == "female"), spec.index))
    return items


def test_registry_has_the_five_backbones_and_an_unknown_name_lists_them():
    assert set(BACKBONES) == {
        "resnet50",
        "resnet18",
        "mobilenet_v3_large",
        "efficientnet_b0",
        "efficientnet_lite0",
    }
    assert TrainConfig().backbone == "resnet50"
    with pytest.raises(ValueError) as caught:
        backbone_spec("vgg16")
    valid = "efficientnet_b0, efficientnet_lite0, mobilenet_v3_large, resnet18, resnet50"
    assert valid in str(caught.value)
    with pytest.raises(ValueError, match="valid backbones"):
        TrainConfig(backbone="vgg16")
    with pytest.raises(ValueError, match="Unknown training settings: colour"):
        TrainConfig.from_dict({"colour": "red"})


def test_head_pools_maps_and_takes_pooled_features_alike():
    head = Head(8, 512)
    assert head.fc1.out_features == 512 and head.fc2.out_features == 1
    maps = torch.randn(3, 8, 4, 4)
    assert torch.allclose(head(maps), head(maps.mean(dim=(2, 3))), atol=1e-6)
    assert head(maps).shape == (3,)


def test_device_choice_is_cpu_here_and_a_missing_device_is_an_error():
    assert device_choose().type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            device_choose("cuda")


def test_folds_never_share_a_face_keep_near_duplicates_together_and_stratify():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    groups = [f"g{i // 3}" if i < 60 else f"f{i}" for i in range(200)]  # triplets of duplicates
    for i in range(0, 60, 3):
        labels[i : i + 3] = labels[i]
    fold = folds_assign(labels, groups, folds=5, seed=3)
    assert fold.shape == (200,) and set(fold) == {0, 1, 2, 3, 4}
    # Each face is in exactly one held-out fold: the test sets partition the faces.
    held_out = [set(np.flatnonzero(fold == k)) for k in range(5)]
    assert sum(len(s) for s in held_out) == 200 and set().union(*held_out) == set(range(200))
    for i in range(0, 60, 3):
        assert len(set(fold[i : i + 3])) == 1
    for k in range(5):
        share = labels[fold == k].mean()
        assert abs(share - labels.mean()) < 0.1
    assert (fold == folds_assign(labels, groups, folds=5, seed=3)).all()


def test_label_checks_name_the_problem():
    with pytest.raises(TrainingDataError, match="No labeled faces"):
        labels_check([], folds=5, classes=CLASSES)
    with pytest.raises(TrainingDataError, match="Only one class \\('male'\\) among the 3"):
        labels_check([0, 0, 0], folds=5, classes=CLASSES)
    with pytest.raises(TrainingDataError, match="each class needs at least 10 faces"):
        labels_check([0] * 20 + [1] * 9, folds=5, classes=CLASSES)


def test_binary_summary_interval_is_the_wilson_interval_of_statsmodels():
    from statsmodels.stats.proportion import proportion_confint

    for count, n in [(0, 10), (7, 10), (88, 100), (30, 30)]:
        labels = np.ones(n, dtype=int)
        probabilities = np.where(np.arange(n) < count, 0.9, 0.1)
        summary = binary_summary(labels, probabilities, 0.5)
        assert summary["correct"] == count and summary["fn"] == n - count
        reference = proportion_confint(count, n, method="wilson")
        assert np.allclose((summary["low"], summary["high"]), reference)


def _extract(crops, cache_root, *, name="resnet18", seed=1):
    backbone = backbone_build(name=name, weights="none", seed=seed, image_size=64)
    cache = FeatureCache(
        DirectoryStore(cache_root),
        backbone=backbone.name,
        weights_id=backbone.weights_id,
        preprocessing=backbone.preprocessing.key(),
        dim=backbone.features,
    )
    feats, stats = features_extract(
        backbone=backbone,
        keys=[c.key for c in crops],
        content_hashes=[c.content_hash for c in crops],
        cache=cache,
        device=torch.device("cpu"),
    )
    return feats, stats, cache


def test_feature_cache_is_hit_on_the_second_run_and_gives_the_same_features(crops, tmp_path):
    first, stats1, _ = _extract(crops[:20], tmp_path)
    second, stats2, _ = _extract(crops[:20], tmp_path)
    assert (stats1.hits, stats1.misses) == (0, 20)
    assert (stats2.hits, stats2.misses) == (20, 0)
    assert np.array_equal(first, second)
    # Adding faces computes only the new ones.
    _, stats3, _ = _extract(crops[:25], tmp_path)
    assert (stats3.hits, stats3.misses) == (20, 5)


def test_cache_entry_from_another_backbone_or_seed_is_a_miss(crops, tmp_path):
    _extract(crops[:8], tmp_path, name="resnet18", seed=1)
    _, other_seed, _ = _extract(crops[:8], tmp_path, name="resnet18", seed=2)
    assert other_seed.hits == 0
    _, other_backbone, cache = _extract(crops[:8], tmp_path, name="mobilenet_v3_large")
    assert other_backbone.hits == 0
    # An entry copied in from another key (same file name) is detected and recomputed.
    _, _, resnet_cache = _extract(crops[:8], tmp_path, name="resnet18", seed=1)
    _, _, seed2_cache = _extract(crops[:8], tmp_path, name="resnet18", seed=2)
    target = resnet_cache.store.path(resnet_cache.name(crops[0].content_hash))
    target.write_bytes(seed2_cache.store.read(seed2_cache.name(crops[0].content_hash)))
    assert resnet_cache.get(crops[0].content_hash) is None
    assert not target.exists()


def test_corrupt_cache_entry_is_recomputed(crops, tmp_path):
    good, _, cache = _extract(crops[:4], tmp_path)
    cache.store.write(cache.name(crops[1].content_hash), b"garbage")
    again, stats, _ = _extract(crops[:4], tmp_path)
    assert (stats.hits, stats.misses) == (3, 1)
    assert np.allclose(again, good, atol=1e-5)


def test_missing_weights_error_names_the_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsMissing) as caught:
        backbone_build(name="resnet50", weights="default", seed=0, download=False)
    message = str(caught.value)
    assert "resnet50-11ad3fa6.pth" in message
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in message
    with pytest.raises(WeightsMissing, match="does not exist"):
        backbone_build(name="resnet18", weights="default", seed=0, weights_file=tmp_path / "x.pth")


def test_weights_are_read_from_the_torchvision_cache(tmp_path, monkeypatch):
    from torchvision.models import resnet18

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.manual_seed(123)
    reference = resnet18()
    torch.save(reference.state_dict(), folder / "resnet18-f37072fd.pth")
    backbone = backbone_build(name="resnet18", weights="default", seed=0, download=False)
    assert backbone.weights_id == "ResNet18_Weights.IMAGENET1K_V1"
    assert torch.equal(backbone.trunk[0].weight, reference.conv1.weight)
    assert backbone.preprocessing.resize == 256 and backbone.preprocessing.crop == 224


def test_training_is_deterministic_and_the_checkpoint_round_trips(crops, tmp_path):
    config = TrainConfig(**TINY)
    store = DirectoryStore(tmp_path)
    first = train_model(config=config, items=crops, classes=CLASSES, cache=store)
    second = train_model(config=config, items=crops, classes=CLASSES, cache=store)
    assert np.array_equal(first.oof_probability, second.oof_probability)
    assert second.cache == {"hits": 60, "misses": 0}
    cv = first.metrics["cv"]
    assert cv["n"] == 60 and len(cv["per_fold"]) == 3
    path = tmp_path / "model.pt"
    checkpoint_save(first.checkpoint, path)
    loaded = checkpoint_load(path)
    assert loaded["config"] == config.to_dict() and loaded["classes"] == CLASSES
    classifier = classifier_load(path, device=torch.device("cpu"))
    probs = np.zeros(len(crops))
    for idx, p in probabilities_iter(classifier, [c.key for c in crops], batch_size=16):
        probs[idx] = p
    assert ((probs >= 0.5) == (np.array([c.label for c in crops]) == 1)).mean() == pytest.approx(
        first.metrics["train"]["accuracy"], abs=0.05
    )


def test_fine_tuning_runs_with_early_stopping(crops, tmp_path):
    config = TrainConfig(
        **{
            **TINY,
            "fine_tune": True,
            "fine_tune_epochs": 3,
            "patience": 1,
            "fine_tune_min_per_class": 10,
        }
    )
    stages = []
    result = train_model(
        config=config,
        items=crops,
        classes=CLASSES,
        cache=DirectoryStore(tmp_path),
        progress=lambda stage, f: stages.append(stage),
    )
    summary = result.metrics["fine_tune"]
    assert 1 <= summary["epochs_run"] <= 3 and summary["best_epoch"] >= 1
    assert summary["val_faces"] > 0 and summary["train_faces"] + summary["val_faces"] == 60
    assert stages.index("features") < stages.index("cv") < stages.index("fit")
    assert stages[-1] == "fine_tune"


def test_corrupted_checkpoint_gives_a_clear_error(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(os.urandom(256))
    with pytest.raises(CheckpointError, match="is unreadable or corrupted"):
        checkpoint_load(path)
    torch.save({"something": 1}, path)
    with pytest.raises(CheckpointError, match="not a Facet checkpoint"):
        checkpoint_load(path)
    with pytest.raises(CheckpointError, match="file not found"):
        checkpoint_load(Path(tmp_path / "nope.pt"))
