"""The stratified validation sample (pure pandas/numpy; METHODS.md "Validation samples").

Two passes over the eligible faces, in one seeded random order:
1. a minimum per subgroup: for every known value of each attribute, faces until the group
   has `min_per_group` (or all it has), smallest groups first, never beyond `size`;
2. the rest by proportional allocation over strata (predicted class × query by default),
   largest remainders first, so the fill is self-weighting within each stratum.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

STRATA_COLUMNS = ("predicted", "query")
MIN_PER_GROUP = 30
STRATUM_SEPARATOR = " | "
# Items drawn for a subgroup minimum are marked, so estimators can use the self-weighting rest.
MINIMUM_PREFIX = "minimum: "


def stratum_keys(frame: pd.DataFrame, columns: Sequence[str] = STRATA_COLUMNS) -> pd.Series:
    keys = frame[list(columns)].fillna("").astype(str)
    return keys.agg(STRATUM_SEPARATOR.join, axis=1) if len(keys) else pd.Series([], dtype=str)


def stratified_sample(
    frame: pd.DataFrame,
    *,
    size: int,
    seed: int,
    attributes: Sequence[str] = (),
    min_per_group: int = MIN_PER_GROUP,
    strata_columns: Sequence[str] = STRATA_COLUMNS,
) -> pd.DataFrame:
    """`size` rows of `frame` (which has `face_id` and the named columns), with a `stratum`
    column and a `reason` column ("minimum" or "strata"). Deterministic for a seed.
    """
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    if size > len(frame):
        raise ValueError(f"size {size} exceeds the {len(frame)} eligible rows")
    if min_per_group < 0:
        raise ValueError(f"min_per_group must not be negative, got {min_per_group}")
    rng = np.random.default_rng(seed)
    pool = frame.sort_values("face_id").reset_index(drop=True).copy()
    pool["stratum"] = stratum_keys(pool, strata_columns).to_numpy()
    pool["_order"] = rng.permutation(len(pool))
    pool = pool.sort_values("_order").reset_index(drop=True)
    chosen = np.zeros(len(pool), dtype=bool)
    groups = []
    for attribute in attributes:
        values = pool[attribute].fillna("").astype(str)
        for value, index in values[values != ""].groupby(values[values != ""]).groups.items():
            groups.append((len(index), attribute, value, np.asarray(index)))
    for _, _, _, index in sorted(groups, key=lambda g: (g[0], g[1], g[2])):
        room = size - int(chosen.sum())
        need = min(min_per_group, len(index)) - int(chosen[index].sum())
        if room <= 0:
            break
        if need > 0:
            free = index[~chosen[index]]  # already in random order
            chosen[free[: min(need, room)]] = True
    reason = np.where(chosen, "minimum", "")
    remaining = size - int(chosen.sum())
    if remaining > 0:
        free = pool.loc[~chosen, "stratum"]
        available = free.value_counts().sort_index()
        quota = remaining * available / available.sum()
        base = np.floor(quota).astype(int)
        short = remaining - int(base.sum())
        order = (quota - base).sort_values(ascending=False, kind="stable").index[:short]
        base.loc[order] += 1
        for stratum, count in base.items():
            if count:
                rows = free.index[free.to_numpy() == stratum][:count]
                chosen[rows] = True
                reason[rows] = "strata"
    sample = pool.loc[chosen].drop(columns="_order").copy()
    sample["reason"] = reason[chosen]
    return sample.sort_values("face_id").reset_index(drop=True)
