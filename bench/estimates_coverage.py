"""Simulation check of the corrected share: coverage of the bootstrap interval and raw bias
(the simulation is bench/_coverage_sim.py).

Prints one JSON line. Defaults run in a few seconds; raise --replications for tighter figures.
    .venv/bin/python bench/estimates_coverage.py [--replications 400] [--resamples 2000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _coverage_sim import simulate_coverage  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--true-share", type=float, default=0.3)
    parser.add_argument("--sensitivity", type=float, default=0.9)
    parser.add_argument("--specificity", type=float, default=0.85)
    parser.add_argument("--faces", type=int, default=1000)
    parser.add_argument("--validation-faces", type=int, default=400)
    parser.add_argument("--replications", type=int, default=400)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=20261129)
    args = parser.parse_args()
    started = time.perf_counter()
    result = simulate_coverage(
        true_share=args.true_share,
        sensitivity=args.sensitivity,
        specificity=args.specificity,
        faces=args.faces,
        validation_faces=args.validation_faces,
        replications=args.replications,
        n_boot=args.resamples,
        seed=args.seed,
    )
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                **{
                    k: round(v, 4) if isinstance(v, float) else v
                    for k, v in result.as_dict().items()
                },
                "true_share": args.true_share,
                "sensitivity": args.sensitivity,
                "specificity": args.specificity,
                "faces": args.faces,
                "validation_faces": args.validation_faces,
                "resamples": args.resamples,
                "seconds": round(seconds, 3),
                "bootstrap_draws_per_second": round(args.replications * args.resamples / seconds),
            }
        )
    )


if __name__ == "__main__":
    main()
