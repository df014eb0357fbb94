"""The promotion gate (pure): does a candidate's subgroup CV accuracy drop too far?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GateFailure:
    attribute: str
    value: str
    candidate: float
    active: float
    n: int

    def describe(self) -> str:
        return (
            f"{self.attribute} = {self.value}: {self.candidate:.1%} vs {self.active:.1%} "
            f"(n = {self.n})"
        )


def _rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    # Versions trained before the rows were stored as a list have nothing comparable.
    rows = (metrics.get("cv") or {}).get("by_subgroup")
    return rows if isinstance(rows, list) else []


def gate_failures(
    candidate: dict[str, Any], active: dict[str, Any], *, margin: float, min_n: int
) -> list[GateFailure]:
    """Subgroups with at least `min_n` faces in both versions' CV whose accuracy in the
    candidate is more than `margin` below the active version's.

    Both read `metrics["cv"]["by_subgroup"]`: rows of evaluation.RESULT_COLUMNS.
    """
    failures = []
    cand, act = (_rows(metrics) for metrics in (candidate, active))
    previous = {(row["attribute"], row["group"]): row for row in act}
    for row in cand:
        old = previous.get((row["attribute"], row["group"]))
        if old is None or row.get("accuracy") is None or old.get("accuracy") is None:
            continue
        if row["n"] < min_n or old["n"] < min_n:
            continue
        if row["accuracy"] < old["accuracy"] - margin:
            failures.append(
                GateFailure(
                    row["attribute"], row["group"], row["accuracy"], old["accuracy"], row["n"]
                )
            )
    return failures
