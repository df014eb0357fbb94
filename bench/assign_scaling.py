"""Cost of handing out the next face at 10k vs 1M faces in a study (PostgreSQL).

Faces are generated inside PostgreSQL (INSERT ... SELECT generate_series), then
`assignment_next` is timed for fresh coders in a small and in a large study. Prints one
JSON line: faces_small, faces_large, ms_small, ms_large, ratio (ms_large / ms_small, the
medians; goal ≤ 1.5). Example:
  .venv/bin/python bench/assign_scaling.py            # 10k vs 1M
  .venv/bin/python bench/assign_scaling.py --large 200000
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import _stack


def faces_generate(*, study, n: int) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO annotate_face (study_id, origin, crop, crop_sha256, original_name,
                detector, phash, crop_print, coding_status, votes_target, slots_taken, priority,
                created_at)
            SELECT %s, 'imported', 'faces/gen-' || g || '.jpg', lpad(g::text, 64, '0'), '',
                '', '', '', 'open', %s, 0, 0, now()
            FROM generate_series(1, %s) AS g
            """,
            [study.pk, study.votes_per_face, n],
        )
        cursor.execute("ANALYZE annotate_face")


def coders_make(*, study, n: int, prefix: str) -> list:
    from django.contrib.auth import get_user_model

    User = get_user_model()
    users = User.objects.bulk_create(
        [User(username=f"{prefix}-{i}", password="!") for i in range(n)]
    )
    study.members.add(*users)
    return users


def time_next(*, study, coders: list, warmup: int) -> float:
    """Median milliseconds of assignment_next for coders who hold nothing yet."""
    from annotate.assignment import assignment_next

    timings = []
    for i, coder in enumerate(coders):
        start = time.perf_counter()
        lease = assignment_next(study=study, coder=coder)
        elapsed = (time.perf_counter() - start) * 1000
        if lease is None:
            raise SystemExit("no work handed out; the study is too small for the sample")
        if i >= warmup:
            timings.append(elapsed)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=300, help="timed calls per study")
    parser.add_argument("--warmup", type=int, default=30)
    _stack.database_arguments(parser, "scaling")
    args = parser.parse_args()
    name = _stack.database_name(args, "scaling")

    url = _stack.database_recreate(base_url=args.base_url, name=name)
    try:
        with _stack.bench_dir() as var_dir:
            _stack.django_setup(url, var_dir)
            from annotate.models import Study

            n = args.calls + args.warmup
            small = Study.objects.create(slug="small", title="Small", attributes_asked=[])
            faces_generate(study=small, n=args.small)
            ms_small = time_next(
                study=small, coders=coders_make(study=small, n=n, prefix="s"), warmup=args.warmup
            )
            large = Study.objects.create(slug="large", title="Large", attributes_asked=[])
            started = time.perf_counter()
            faces_generate(study=large, n=args.large)
            generated_s = time.perf_counter() - started
            ms_large = time_next(
                study=large, coders=coders_make(study=large, n=n, prefix="l"), warmup=args.warmup
            )
            # The small study again, now sharing the table with the large one.
            ms_small_after = time_next(
                study=small, coders=coders_make(study=small, n=n, prefix="s2"), warmup=args.warmup
            )
            from django.db import connections

            connections.close_all()
    finally:
        if not args.keep:
            _stack.database_drop(base_url=args.base_url, name=name)
    print(
        json.dumps(
            {
                "faces_small": args.small,
                "faces_large": args.large,
                "ms_small": round(ms_small, 3),
                "ms_large": round(ms_large, 3),
                "ratio": round(ms_large / ms_small, 3),
            }
        )
    )
    _stack.logger.warning(
        "generated %d faces in %.1f s; small study re-timed beside the large one: %.3f ms",
        args.large,
        generated_s,
        ms_small_after,
    )


if __name__ == "__main__":
    main()
