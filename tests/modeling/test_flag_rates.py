"""The flag rule: a real gap is flagged, chance is not; the simulation bench runs through it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from modeling.evaluation import accuracy_by_group

ROOT = Path(__file__).resolve().parents[2]


def _group(name: str, n: int, right: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "truth": ["female"] * n,
            "predicted": ["female"] * right + ["male"] * (n - right),
            "job": [name] * n,
        }
    )


def test_a_planted_gap_is_flagged_and_a_group_as_accurate_as_the_rest_is_not():
    # Four groups at 88 % and one of n = 100 at 70 %; "twin" has the rest's accuracy exactly.
    frame = pd.concat(
        [
            _group("weak", 100, 70),
            _group("twin", 100, 88),
            *[_group(f"job-{i}", 100, 88) for i in range(3)],
        ],
        ignore_index=True,
    )
    frame["quality"] = np.resize(["good", "blurred"], len(frame))
    result = accuracy_by_group(frame, attributes=["job", "quality"]).set_index(
        ["attribute", "group"]
    )
    assert result.loc[("job", "weak"), "flagged"]
    assert result.loc[("job", "weak"), "p_adjusted"] < 0.01
    twin = result.loc[("job", "twin")]
    assert not twin["flagged"] and twin["p_value"] > 0.3
    # Half of the faces of each quality are in the weak job, evenly: neither quality is worse.
    assert not result.loc[("quality", "good"), "flagged"]
    flagged = result[result["flagged"]].index.tolist()
    assert all("weak" in group for _, group in flagged)


def test_the_bench_prints_one_json_line_with_its_figures():
    completed = subprocess.run(
        [sys.executable, "bench/flag_rates.py", "--rounds", "3", "--faces", "200"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = completed.stdout.strip().splitlines()
    assert len(lines) == 1
    figures = json.loads(lines[0])
    assert {
        "false_flag_rate",
        "power",
        "false_flag_rate_old_rule",
        "rounds",
        "method",
        "alpha",
        "seconds",
    } <= set(figures)
    assert figures["rounds"] == 3 and figures["alpha"] == 0.05
    assert "Fisher" in figures["method"] and "Benjamini" in figures["method"]
    for key in ("false_flag_rate", "power", "false_flag_rate_old_rule"):
        assert 0 <= figures[key] <= 1
