"""Share of women per group: classify-and-count, Rogan–Gladen correction, bootstrap intervals.

Pure pandas/numpy (no Django); METHODS.md "Estimates" is the definition:

- raw share q: mean of "predicted female" in a group, per face or per image (the image's
  share of its faces, averaged over images), after the rank cut-off and the rule that
  near-duplicate faces count once per query;
- corrected share p = (q + Sp − 1) / (Se + Sp − 1) with Se, Sp for "female" from the human
  validation round; undefined when Se + Sp ≤ 1 (the raw share is shown instead); clipped to
  [0, 1] and flagged when clipped;
- 95 % interval: percentile bootstrap that resamples the group's faces (or images) and,
  independently, the validation faces giving Se and Sp; vectorized and seeded.

Resampling n faces that are 0/1 is a binomial draw, and resampling the validation faces is a
multinomial draw over the four cells (TP, FN, FP, TN); both are exact equivalents of index
resampling and let thousands of resamples run as a few array operations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

POSITIVE = "female"
NEGATIVE = "male"
N_BOOT = 2000
LEVEL = 0.95
MIN_VALIDATION_PER_CLASS = 30
PER_CHOICES = ("face", "image")

NOTE_OK = ""
NOTE_NO_FACES = "no faces in this group"
NOTE_NO_VALIDATION = "no human-validation round: raw share only"
NOTE_UNDEFINED = (
    "correction undefined: sensitivity + specificity ≤ 1 in the validation round, "
    "so the raw share is shown"
)
NOTE_CLIPPED = "corrected share fell outside [0, 1] and was clipped"

ESTIMATE_COLUMNS = [
    "images",
    "faces",
    "predicted_female",
    "raw_share",
    "raw_ci_low",
    "raw_ci_high",
    "corrected_share",
    "ci_low",
    "ci_high",
    "clipped",
    "correction_defined",
    "sensitivity",
    "specificity",
    "rates_from",
    "consensus_faces",
    "consensus_share",
    "note",
]


@dataclass(frozen=True)
class ErrorRates:
    """Counts of the validation round's 2×2 table for the positive class ("female")."""

    tp: int
    fn: int
    fp: int
    tn: int

    @classmethod
    def from_labels(
        cls, truth: Sequence[str] | pd.Series, predicted: Sequence[str] | pd.Series
    ) -> ErrorRates:
        """Count the cells from label columns; rows whose truth is not female/male are ignored."""
        t = pd.Series(list(truth), dtype=object).astype(str)
        p = pd.Series(list(predicted), dtype=object).astype(str)
        binary = t.isin([POSITIVE, NEGATIVE])
        t, p = t[binary], p[binary]
        tpos, ppos = t == POSITIVE, p == POSITIVE
        return cls(
            tp=int((tpos & ppos).sum()),
            fn=int((tpos & ~ppos).sum()),
            fp=int((~tpos & ppos).sum()),
            tn=int((~tpos & ~ppos).sum()),
        )

    @property
    def n(self) -> int:
        return self.tp + self.fn + self.fp + self.tn

    @property
    def sensitivity(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def specificity(self) -> float:
        return self.tn / (self.tn + self.fp) if self.tn + self.fp else float("nan")

    @property
    def defined(self) -> bool:
        """Whether the Rogan–Gladen correction is defined (Se + Sp > 1)."""
        total = self.sensitivity + self.specificity
        return bool(np.isfinite(total) and total > 1)

    def as_dict(self) -> dict[str, float | int | bool]:
        return {
            "tp": self.tp,
            "fn": self.fn,
            "fp": self.fp,
            "tn": self.tn,
            "sensitivity": self.sensitivity,
            "specificity": self.specificity,
            "defined": self.defined,
        }


def rogan_gladen(
    q: np.ndarray | float, se: np.ndarray | float, sp: np.ndarray | float
) -> np.ndarray:
    """Unclipped corrected share (q + Sp − 1) / (Se + Sp − 1); NaN where Se + Sp ≤ 1."""
    q, se, sp = (np.asarray(x, dtype=float) for x in (q, se, sp))
    denom = se + sp - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, (q + sp - 1) / denom, np.nan)


def raw_bias(p: float, se: float, sp: float) -> float:
    """Expected raw share minus the true share: (Se + Sp − 1)·p + (1 − Sp) − p."""
    return (se + sp - 1) * p + (1 - sp) - p


@dataclass(frozen=True)
class Interval:
    raw_low: np.ndarray
    raw_high: np.ndarray
    low: np.ndarray
    high: np.ndarray


def _rates_draws_fast(
    tp: np.ndarray,
    fn: np.ndarray,
    fp: np.ndarray,
    tn: np.ndarray,
    n_boot: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized multinomial over rows via sequential binomials (same distribution)."""
    total = (tp + fn + fp + tn)[:, None]
    shape = (len(tp), n_boot)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_tp = np.where(total > 0, tp[:, None] / total, 0.0)
        p_fn = np.where(total - tp[:, None] > 0, fn[:, None] / (total - tp[:, None]), 0.0)
        rest_fp = fp[:, None] + tn[:, None]
        p_fp = np.where(rest_fp > 0, fp[:, None] / rest_fp, 0.0)
    d_tp = rng.binomial(
        np.broadcast_to(total, shape).astype(np.int64), np.broadcast_to(p_tp, shape)
    )
    left = np.broadcast_to(total, shape) - d_tp
    d_fn = rng.binomial(left.astype(np.int64), np.clip(np.broadcast_to(p_fn, shape), 0, 1))
    left = left - d_fn
    d_fp = rng.binomial(left.astype(np.int64), np.clip(np.broadcast_to(p_fp, shape), 0, 1))
    d_tn = left - d_fp
    with np.errstate(divide="ignore", invalid="ignore"):
        se = d_tp / (d_tp + d_fn)
        sp = d_tn / (d_tn + d_fp)
    return se, sp


def row_quantiles(draws: np.ndarray, qs: Sequence[float]) -> list[np.ndarray]:
    """`np.nanquantile(draws, q, axis=1)` for each q (its default linear method, same
    interpolation), from one sort of the rows instead of one quantile call per row and q."""
    ordered = np.sort(draws, axis=1)  # NaN sort last
    valid = (~np.isnan(draws)).sum(axis=1)
    rows = np.arange(draws.shape[0])
    last = np.maximum(valid - 1, 0)
    out = []
    for q in qs:
        position = last * q
        below = np.floor(position).astype(np.int64)
        t = position - below
        a, b = ordered[rows, below], ordered[rows, np.minimum(below + 1, last)]
        difference = b - a
        value = np.where(t >= 0.5, b - difference * (1 - t), a + difference * t)
        out.append(np.where(valid > 0, value, np.nan))
    return out


def bootstrap_interval(
    q_draws: np.ndarray,
    rates: ErrorRates | Sequence[ErrorRates] | None,
    *,
    rng: np.random.Generator,
    level: float = LEVEL,
) -> Interval:
    """Percentile intervals of the raw and corrected share from resampled raw shares.

    `q_draws` has shape (R, B): B resampled raw shares for each of R rows. `rates` is one
    ErrorRates for all rows or one per row; each row's validation faces are resampled
    independently of its faces. Corrected draws with Se + Sp ≤ 1 are dropped; the corrected
    interval is NaN when `rates` is None or the point correction is undefined.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    rows, n_boot = q_draws.shape
    alpha = (1 - level) / 2
    raw_low, raw_high = row_quantiles(q_draws, (alpha, 1 - alpha))
    if rates is None:
        nan = np.full(rows, np.nan)
        return Interval(raw_low, raw_high, nan, nan.copy())
    per_row = [rates] * rows if isinstance(rates, ErrorRates) else list(rates)
    if len(per_row) != rows:
        raise ValueError("one ErrorRates per row is needed")
    cells = np.array([[r.tp, r.fn, r.fp, r.tn] for r in per_row], dtype=np.int64).reshape(rows, 4)
    # Rows sharing one validation table (the usual case) share its resamples: the marginal
    # interval of each row is the same, and the draws cost one row instead of thousands.
    distinct, index = np.unique(cells, axis=0, return_inverse=True)
    tp, fn, fp, tn = distinct.T
    se, sp = _rates_draws_fast(tp, fn, fp, tn, n_boot, rng)
    se, sp = se[index.reshape(-1)], sp[index.reshape(-1)]
    corrected = np.clip(rogan_gladen(q_draws, se, sp), 0.0, 1.0)
    low, high = row_quantiles(corrected, (alpha, 1 - alpha))  # NaN where no draw is defined
    defined = np.array([r.defined for r in per_row])
    low = np.where(defined, low, np.nan)
    high = np.where(defined, high, np.nan)
    return Interval(raw_low, raw_high, low, high)


def binomial_draws(
    k: np.ndarray, n: np.ndarray, *, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """Resampled raw shares for rows of k positives among n faces, shape (R, B); NaN if n = 0."""
    k = np.asarray(k, dtype=np.int64)
    n = np.asarray(n, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(n > 0, k / np.maximum(n, 1), 0.0)
    draws = rng.binomial(n[:, None], q[:, None], size=(len(n), n_boot)).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n[:, None] > 0, draws / np.maximum(n[:, None], 1), np.nan)


def unit_mean_draws(
    values: Sequence[np.ndarray], *, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """Resampled means of each row's units (e.g. images' shares), shape (R, B).

    Resampling m units with replacement is a multinomial draw over their distinct values.
    """
    out = np.full((len(values), n_boot), np.nan)
    for row, unit_values in enumerate(values):
        unit_values = np.asarray(unit_values, dtype=float)
        if unit_values.size == 0:
            continue
        distinct, counts = np.unique(unit_values, return_counts=True)
        draws = rng.multinomial(unit_values.size, counts / unit_values.size, size=n_boot)
        out[row] = draws @ distinct / unit_values.size
    return out


# --- the faces behind the figures ------------------------------------------------------


def faces_select(
    faces: pd.DataFrame, *, rank_cutoff: int | None = None, dedupe: bool = True
) -> pd.DataFrame:
    """The faces that count: rank ≤ cut-off (unknown rank dropped when a cut-off is set) and,
    with `dedupe`, each near-duplicate cluster once per query.

    Expects columns `face_id`, `query`, `rank`, and optionally `duplicate_of` (the first face
    of the near-duplicate cluster a flagged face belongs to). Only a flag makes a duplicate:
    similar hashes are not evidence (similar-looking people), so a face never flagged always
    counts. The lowest face id of a cluster is kept.
    """
    if rank_cutoff is not None:
        if rank_cutoff < 1:
            raise ValueError(f"the rank cut-off must be at least 1, got {rank_cutoff}")
        rank = pd.to_numeric(faces["rank"], errors="coerce")
        faces = faces[rank.notna() & (rank <= rank_cutoff)]
    if not dedupe or faces.empty:
        return faces
    faces = faces.sort_values("face_id")
    if "duplicate_of" in faces.columns:
        cluster = faces["duplicate_of"].where(faces["duplicate_of"].notna(), faces["face_id"])
        faces = faces[~pd.DataFrame({"q": faces["query"], "c": cluster}).duplicated()]
    return faces


def share_estimates(
    faces: pd.DataFrame,
    *,
    by: Sequence[str],
    rates: ErrorRates | None,
    images: pd.DataFrame | None = None,
    validation: pd.DataFrame | None = None,
    per: str = "face",
    rank_cutoff: int | None = None,
    dedupe: bool = True,
    per_subgroup_rates: bool = False,
    min_validation: int = MIN_VALIDATION_PER_CLASS,
    n_boot: int = N_BOOT,
    seed: int = 0,
    level: float = LEVEL,
) -> pd.DataFrame:
    """The estimate table: one row per group of `by` columns, with ESTIMATE_COLUMNS.

    `faces`: one row per face with `face_id`, `image_id`, `query`, `rank`, `predicted`
    (label), optional `consensus` (human label or empty), `duplicate_of`, `phash` and the
    `by` columns. `images` (optional): one row per image with `image_id`, `rank` and the `by`
    columns, so groups with images but no faces still get a row. `validation` (for
    per-subgroup Se/Sp): `truth`, `predicted` and the `by` columns; a group uses its own
    rates when it has at least `min_validation` validation faces of each class, else the
    overall `rates`.
    """
    if per not in PER_CHOICES:
        raise ValueError(f"per must be one of {', '.join(PER_CHOICES)}; got {per!r}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    by = list(by)
    missing = [c for c in by if c not in faces.columns]
    if missing:
        raise ValueError(f"unknown grouping columns: {missing}")
    selected = faces_select(faces, rank_cutoff=rank_cutoff, dedupe=dedupe).copy()
    selected["is_female"] = (selected["predicted"].astype(str) == POSITIVE).astype(float)
    consensus = selected.get("consensus", pd.Series("", index=selected.index)).astype(str)
    selected["coded"] = consensus.isin([POSITIVE, NEGATIVE])
    selected["coded_female"] = consensus == POSITIVE
    stats = _group_stats(selected, by)
    image_units = _image_units(selected, by) if per == "image" else {}
    image_counts = _image_counts(images, by, rank_cutoff)
    own_rates = (
        _rates_by_group(validation, by)
        if per_subgroup_rates and validation is not None and rates is not None
        else {}
    )
    rows, units, row_rates = [], [], []
    for key in _group_keys(selected, images, by, rank_cutoff):
        n, female, n_images, coded, coded_female = stats.get(key, (0, 0, 0, 0, 0))
        if per == "image":
            units.append(image_units.get(key, np.empty(0)))
            raw_share = float(units[-1].mean()) if units[-1].size else np.nan
        else:
            raw_share = female / n if n else np.nan
        group_rates, rates_from = rates, "overall" if rates is not None else ""
        own = own_rates.get(tuple(str(v) for v in key))
        if own is not None and min(own.tp + own.fn, own.fp + own.tn) >= min_validation:
            group_rates, rates_from = own, "group"
        row_rates.append(group_rates)
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                "images": image_counts.get(key, n_images),
                "faces": n,
                "predicted_female": female,
                "raw_share": raw_share,
                "consensus_faces": coded,
                "consensus_share": coded_female / coded if coded else np.nan,
                "rates_from": rates_from,
            }
        )
    table = pd.DataFrame(rows, columns=[*by, *ESTIMATE_COLUMNS])
    if table.empty:
        return table
    rng = np.random.default_rng(seed)
    if per == "face":
        q_draws = binomial_draws(
            table["predicted_female"].to_numpy(), table["faces"].to_numpy(), n_boot=n_boot, rng=rng
        )
    else:
        q_draws = unit_mean_draws(units, n_boot=n_boot, rng=rng)
    has_rates = np.array([r is not None for r in row_rates])
    interval = bootstrap_interval(
        q_draws, [r or ErrorRates(0, 0, 0, 0) for r in row_rates], rng=rng, level=level
    )
    se = np.array([r.sensitivity if r else np.nan for r in row_rates], dtype=float)
    sp = np.array([r.specificity if r else np.nan for r in row_rates], dtype=float)
    point = rogan_gladen(table["raw_share"].to_numpy(dtype=float), se, sp)
    clipped = np.isfinite(point) & ((point < 0) | (point > 1))
    table["raw_ci_low"], table["raw_ci_high"] = interval.raw_low, interval.raw_high
    table["corrected_share"] = np.clip(point, 0.0, 1.0)
    table["ci_low"] = np.where(has_rates, interval.low, np.nan)
    table["ci_high"] = np.where(has_rates, interval.high, np.nan)
    table["clipped"] = clipped
    table["correction_defined"] = np.array([bool(r and r.defined) for r in row_rates])
    table["sensitivity"], table["specificity"] = se, sp
    table["note"] = [
        _note(faces=n, has_rates=h, defined=d, clipped=c)
        for n, h, d, c in zip(
            table["faces"], has_rates, table["correction_defined"], clipped, strict=True
        )
    ]
    return table.reset_index(drop=True)


def _note(*, faces: int, has_rates: bool, defined: bool, clipped: bool) -> str:
    if faces == 0:
        return NOTE_NO_FACES
    if not has_rates:
        return NOTE_NO_VALIDATION
    if not defined:
        return NOTE_UNDEFINED
    return NOTE_CLIPPED if clipped else NOTE_OK


def _keyed(key: Any) -> tuple[Any, ...]:
    return key if isinstance(key, tuple) else (key,)


def _group_stats(selected: pd.DataFrame, by: list[str]) -> dict[tuple[Any, ...], tuple[int, ...]]:
    """Per group of `by`: faces, predicted female, images, faces with a human label, of them
    female; one grouped pass instead of a pass per group."""
    table = selected.groupby(by, sort=False).agg(
        faces=("is_female", "size"),
        female=("is_female", "sum"),
        images=("image_id", "nunique"),
        coded=("coded", "sum"),
        coded_female=("coded_female", "sum"),
    )
    return {
        _keyed(key): tuple(int(v) for v in values)
        for key, values in zip(table.index, table.to_numpy(), strict=True)
    }


def _image_units(selected: pd.DataFrame, by: list[str]) -> dict[tuple[Any, ...], np.ndarray]:
    """Per group of `by`: the share of predicted female faces in each of its images."""
    shares = selected.groupby([*by, "image_id"], sort=True)["is_female"].mean()
    return {
        _keyed(key): part.to_numpy()
        for key, part in shares.groupby(level=list(range(len(by))), sort=False)
    }


def _rates_by_group(validation: pd.DataFrame, by: list[str]) -> dict[tuple[str, ...], ErrorRates]:
    """The validation faces' error rates within each group of `by` (values compared as text)."""
    keys = [validation[column].astype(str).rename(column) for column in by]
    return {
        _keyed(key): ErrorRates.from_labels(part["truth"], part["predicted"])
        for key, part in validation.groupby(keys, sort=False)
    }


def _group_keys(
    faces: pd.DataFrame, images: pd.DataFrame | None, by: list[str], rank_cutoff: int | None
) -> list[tuple[Any, ...]]:
    keys: set[tuple[Any, ...]] = set()
    for frame in (faces, _images_selected(images, rank_cutoff)):
        if frame is None or frame.empty:
            continue
        keys.update(map(tuple, frame[by].astype(object).itertuples(index=False, name=None)))
    return sorted(keys, key=lambda k: tuple(str(v) for v in k))


def _images_selected(images: pd.DataFrame | None, rank_cutoff: int | None) -> pd.DataFrame | None:
    if images is None or rank_cutoff is None:
        return images
    rank = pd.to_numeric(images["rank"], errors="coerce")
    return images[rank.notna() & (rank <= rank_cutoff)]


def _image_counts(
    images: pd.DataFrame | None, by: list[str], rank_cutoff: int | None
) -> dict[tuple[Any, ...], int]:
    selected = _images_selected(images, rank_cutoff)
    if selected is None or selected.empty:
        return {}
    counts = selected.groupby(by, sort=False)["image_id"].nunique()
    return {_keyed(k): int(v) for k, v in counts.items()}
