"""Stratified k-fold assignment over groups of near-duplicate faces.

A group (faces with the same perceptual hash within a query, or a lone face) always lands in
one fold, so a face and its near-duplicate are never on both sides of a split; each class is
spread evenly over the folds. Deterministic by seed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence

import numpy as np
import numpy.typing as npt

from modeling.ml.errors import NO_LABELS, ONE_CLASS, TOO_FEW_PER_FOLD, TrainingDataError

MIN_PER_CLASS_PER_FOLD = 2


def labels_check(labels: npt.ArrayLike, *, folds: int, classes: Sequence[str]) -> None:
    """Raise TrainingDataError when the labels cannot train and cross-validate a model."""
    labels = np.asarray(labels, dtype=int)
    if labels.size == 0:
        raise TrainingDataError(NO_LABELS)
    counts = np.bincount(labels, minlength=len(classes))
    present = np.flatnonzero(counts)
    if present.size < 2:
        raise TrainingDataError(ONE_CLASS.format(label=classes[present[0]], n=labels.size))
    need = MIN_PER_CLASS_PER_FOLD * folds
    if counts.min() < need:
        have = ", ".join(f"{classes[i]} {int(c)}" for i, c in enumerate(counts))
        raise TrainingDataError(TOO_FEW_PER_FOLD.format(folds=folds, need=need, counts=have))


def folds_assign(
    labels: npt.ArrayLike, groups: Sequence[Hashable], *, folds: int, seed: int
) -> np.ndarray:
    """The fold (0..folds-1) of each item; items sharing a group share a fold."""
    labels = np.asarray(labels, dtype=int)
    members: dict[Hashable, list[int]] = defaultdict(list)
    for i, group in enumerate(groups):
        members[group].append(i)
    rng = np.random.default_rng(seed)
    group_keys = list(members)
    order = rng.permutation(len(group_keys))
    # Larger groups first so the greedy fill stays balanced; the shuffle breaks ties by seed.
    ordered = sorted((group_keys[i] for i in order), key=lambda g: -len(members[g]))
    n_classes = int(labels.max()) + 1 if labels.size else 1
    per_class = np.zeros((folds, n_classes), dtype=int)
    assignment = np.empty(len(labels), dtype=int)
    for group in ordered:
        idx = members[group]
        cls = int(round(labels[idx].mean()))  # the group's majority class
        load = per_class[:, cls] * len(labels) + per_class.sum(axis=1)
        fold = int(np.argmin(load))
        assignment[idx] = fold
        np.add.at(per_class[fold], labels[idx], 1)
    if (per_class < 1).any():
        have = ", ".join(f"fold {f}: {row.tolist()}" for f, row in enumerate(per_class))
        raise TrainingDataError(
            TOO_FEW_PER_FOLD.format(folds=folds, need="one per fold", counts=have)
        )
    return assignment
