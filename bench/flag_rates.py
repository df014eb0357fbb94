"""Simulated validation rounds through modeling.evaluation.accuracy_by_group: how often the
flag fires by chance, and how often it finds a real gap.

Each round has `--faces` faces (400: six attributes, 29 groups of 40–320 faces, two-way
intersections included as on the round page) and every face right with probability
`--accuracy`. `false_flag_rate`: share of such rounds with any group flagged (goal ≤ 0.05).
`power`: share of rounds, the same but with one group of `--weak-n` faces `--weak-gap` less
accurate, that flag that group (goal ≥ 0.8). `false_flag_rate_old_rule` replays the rule the
flag replaced (interval below the overall, or more than 5 points below it) on the null rounds.
Prints one JSON line.
    .venv/bin/python bench/flag_rates.py [--rounds 500] [--correction bh|holm]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modeling import evaluation  # noqa: E402

# Group sizes per attribute in a round of 400 faces (scaled to --faces); the second race
# group is the one made weaker in the power rounds, and --weak-n sets its size.
GROUP_SIZES = {
    "race": [120, 100, 80, 60, 40],
    "age_band": [120, 100, 80, 60, 40],
    "glasses": [320, 80],
    "quality": [240, 100, 60],
    "job": [50] * 8,
    "country": [70, 70, 70, 70, 60, 60],
}
WEAK = ("race", "race-1")
OLD_GAP = 0.05


def _round_frame(
    rng: np.random.Generator, *, faces: int, accuracy: float, weak_n: int, weak_gap: float
) -> pd.DataFrame:
    frame = pd.DataFrame(index=range(faces))
    for attribute, sizes in GROUP_SIZES.items():
        counts = np.round(np.asarray(sizes) * faces / sum(sizes)).astype(int)
        if attribute == WEAK[0]:
            counts[1] = weak_n
        counts[0] += faces - counts.sum()
        values = np.repeat([f"{attribute}-{i}" for i in range(len(counts))], counts)
        frame[attribute] = rng.permutation(values)
    weak = (frame[WEAK[0]] == WEAK[1]).to_numpy()
    p_right = np.where(weak, accuracy - weak_gap, accuracy)
    frame["truth"] = "female"
    frame["predicted"] = np.where(rng.random(faces) < p_right, "female", "male")
    return frame


def _old_rule_flags(rows: pd.DataFrame, min_n: int) -> bool:
    overall = rows.iloc[0]["accuracy"]
    groups = rows.iloc[1:]
    below = (groups["ci_high"] < overall) | (overall - groups["accuracy"] > OLD_GAP + 1e-12)
    return bool((below & (groups["n"] >= min_n)).any())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--faces", type=int, default=400, help="Faces per round.")
    parser.add_argument("--accuracy", type=float, default=0.88)
    parser.add_argument("--weak-n", type=int, default=100, dest="weak_n")
    parser.add_argument("--weak-gap", type=float, default=0.15, dest="weak_gap")
    parser.add_argument(
        "--correction", choices=sorted(evaluation.CORRECTIONS), default=evaluation.BH
    )
    parser.add_argument("--alpha", type=float, default=evaluation.ALPHA)
    parser.add_argument("--gap", type=float, default=evaluation.GAP)
    parser.add_argument("--min-n", type=int, default=evaluation.MIN_N, dest="min_n")
    parser.add_argument("--seed", type=int, default=20261213)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    options = {
        "attributes": list(GROUP_SIZES),
        "min_n": args.min_n,
        "gap": args.gap,
        "alpha": args.alpha,
        "correction": args.correction,
    }
    started = time.perf_counter()
    false_flags = old_false_flags = found = tested = 0
    for _ in range(args.rounds):
        null = evaluation.accuracy_by_group(
            _round_frame(
                rng, faces=args.faces, accuracy=args.accuracy, weak_n=args.weak_n, weak_gap=0.0
            ),
            **options,
        )
        false_flags += bool(null["flagged"].any())
        old_false_flags += _old_rule_flags(null, args.min_n)
        tested += int(null["p_value"].notna().sum())
        planted = evaluation.accuracy_by_group(
            _round_frame(
                rng,
                faces=args.faces,
                accuracy=args.accuracy,
                weak_n=args.weak_n,
                weak_gap=args.weak_gap,
            ),
            **options,
        ).set_index(["attribute", "group"])
        found += bool(planted.loc[WEAK, "flagged"])
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "false_flag_rate": round(false_flags / args.rounds, 4),
                "power": round(found / args.rounds, 4),
                "false_flag_rate_old_rule": round(old_false_flags / args.rounds, 4),
                "rounds": args.rounds,
                "method": f"{evaluation.FLAG_TEST}; {evaluation.CORRECTIONS[args.correction]}",
                "correction": args.correction,
                "alpha": args.alpha,
                "gap": args.gap,
                "min_n": args.min_n,
                "accuracy": args.accuracy,
                "weak_n": args.weak_n,
                "weak_gap": args.weak_gap,
                "faces_per_round": args.faces,
                "tests_per_round": round(tested / args.rounds, 1),
                "seconds": round(seconds, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
