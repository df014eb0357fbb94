"""Speed of validation pages and estimates at study scale (default 50,000 faces).

Builds a throwaway test database (SQLite, or the DATABASE_URL server), fills it with faces,
predictions and consensus, and times: the gallery's first and a deep page (SQL paging), a
filtered gallery page, computing a round's results, rendering the results page from storage,
and the estimate tables with 2,000 resamples. Prints one JSON line; ratios compare a page at
--faces against the same page at --small faces, measured in the same run.
    .venv/bin/python bench/validation_pages.py [--faces 50000] [--small 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def timed(function, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def build(n: int, seed: int):
    from annotate.roles import Role
    from modeling.services.validation import validation_results_compute, validation_round_create
    from tests.factories import make_plain_faces, make_study, make_user
    from tests.modeling.validation_factories import code_faces, make_version, plant

    study = make_study()
    jobs = [f"job{i}" for i in range(20)]
    countries = [f"c{i}" for i in range(18)]
    faces = make_plain_faces(study, n, jobs=jobs, countries=countries)
    version = make_version(study, active=True)
    truth = plant(faces, version, coded=False, seed=seed)
    round = validation_round_create(
        version=version, size=min(1500, n // 3), seed=seed, min_per_group=30
    )
    code_faces(round.items.values_list("face_id", flat=True), truth)
    # a share of the rest coded too, so the gallery has tens of thousands of candidates
    rest = [f.pk for f in faces if f.pk not in set(round.items.values_list("face_id", flat=True))]
    code_faces(rest[: len(rest) // 2], truth)
    round = validation_results_compute(round_id=round.pk)
    researcher = make_user(Role.RESEARCHER, study=study)
    return study, version, round, researcher


def measure(n: int, seed: int) -> dict:
    from django.test import Client
    from django.urls import reverse

    from modeling.selectors.estimates import EstimateOptions, estimate_tables
    from modeling.services.validation import validation_results_compute

    started = time.perf_counter()
    study, version, round, researcher = build(n, seed)
    build_s = time.perf_counter() - started
    client = Client()
    client.force_login(researcher)
    gallery = reverse("modeling:gallery", args=[version.pk])

    def get(url):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)

    return {
        "faces": n,
        "build_s": round_(build_s),
        "gallery_first_page_ms": timed(lambda: get(gallery)),
        "gallery_page_20_ms": timed(lambda: get(gallery + "?page=20")),
        "gallery_filtered_ms": timed(
            lambda: get(gallery + "?attribute=age_band&group=3-9&direction=female_to_male")
        ),
        "results_compute_ms": timed(lambda: validation_results_compute(round_id=round.pk), 1),
        "results_page_ms": timed(
            lambda: get(reverse("modeling:validation_round", args=[round.pk]))
        ),
        "estimates_ms": timed(
            lambda: estimate_tables(version=version, options=EstimateOptions()), 1
        ),
        "estimates_page_ms": timed(
            lambda: get(reverse("modeling:estimates", args=[study.slug])), 1
        ),
    }


def round_(value: float) -> float:
    return round(value, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--faces", type=int, default=50_000)
    parser.add_argument("--small", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    import tempfile

    if not os.environ.get("DATABASE_URL"):
        folder = tempfile.mkdtemp(prefix="facet-bench-")
        os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
        os.environ.setdefault("FACET_MEDIA_ROOT", f"{folder}/media")
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    import logging

    logging.disable(logging.INFO)
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        small = measure(args.small, args.seed)
        large = measure(args.faces, args.seed)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    line = {"database": connection.vendor, **large, "small": small}
    for key in ("gallery_first_page_ms", "gallery_page_20_ms", "results_page_ms"):
        line[f"{key.removesuffix('_ms')}_ratio_vs_small"] = round(
            large[key] / max(small[key], 0.1), 2
        )
    print(json.dumps(line))


if __name__ == "__main__":
    main()
