"""Speed of the researcher's pages (study, agreement, home) as a study grows.

For each size it builds a study on a fresh PostgreSQL database, in bulk SQL but in the shape
the services write: source images (two faces each), faces, and three votes per face from 20
coders with their submitted assignments, with the Consensus row and coding status that
annotate.consensus writes (9 faces in 10 have all three votes: a majority makes them complete,
a three-way split (about 8 %) sends them to adjudication; the tenth is open with 0-2 votes). The pages are
served through the real Django stack (the test client, DEBUG off, PostgreSQL), logged in as
the study's researcher; each time is the median of --repeat requests after one warm-up.
`first_study_ms` is the first study page a fresh web process serves: a new Python process
loads config.wsgi as gunicorn --preload does, then serves that one request (median of 3).

Where the project keeps summaries of a study (annotate.services.summaries), they are
refreshed once after the build, as a worker would (`refresh_s`), and kept fresh for the run
(FACET_SUMMARY_MAX_AGE_S=3600: in production a worker refreshes them in the background), so
the times are those of the pages themselves.

Prints one JSON line: the times at each size, the ratio of each page at the largest size
to its time at the smallest, and the smallest study's pages measured again once the largest
shares the database with it (`<small>_beside_<large>`: a study's pages must not slow down
because another study is large).
    .venv/bin/python bench/pages.py [--sizes 10000,100000,1000000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._stack import (  # noqa: E402
    bench_dir,
    database_arguments,
    database_drop,
    database_name,
    database_recreate,
)

CODERS = 20
PAGES = ("study", "agreement", "home")

# One statement per table. Vote labels come from a hash of (face, coder): 47 % female, 47 % male,
# 6 % can't tell, so about 8 % of the faces split three ways and wait for a researcher.
FILL_SQL = [
    """
    INSERT INTO annotate_sourceimage (study_id, file, display, original_name, sha256, width,
        height, bytes, query, job, country, language, source_url, metadata, created_at)
    SELECT %(study)s, 'images/bench-' || %(study)s || '-' || g || '.jpg', '', '',
        md5(g::text) || md5(g::text), 640, 480, 50000, '', 'job' || (g %% 20),
        'c' || (g %% 18), '', '', '{}', now()
    FROM generate_series(1, %(images)s) AS g
    """,
    """
    INSERT INTO annotate_face (study_id, source_image_id, origin, crop, crop_sha256,
        original_name, detector, phash, crop_print, coding_status, votes_target, slots_taken,
        priority, created_at)
    SELECT %(study)s, i.id, 'detected', 'faces/bench-' || i.id || '-' || k || '.jpg',
        md5(i.id::text || k) || md5(k || i.id::text), '', 'bench', '', '', 'open', 3, 0, 0,
        now()
    FROM annotate_sourceimage i CROSS JOIN generate_series(1, 2) AS k
    WHERE i.study_id = %(study)s
    """,
    # Faces whose id ends in 0 are open with 0-2 votes; the others have three.
    """
    INSERT INTO annotate_assignment (face_id, coder_id, status, leased_at, expires_at,
        submitted_at, gold)
    SELECT f.id, (%(coders)s)[1 + (f.id + j) %% %(n_coders)s], 'submitted',
        now() - interval '2 hours', now() - interval '1 hour', now() - interval '2 hours', false
    FROM annotate_face f CROSS JOIN generate_series(0, 2) AS j
    WHERE f.study_id = %(study)s AND (f.id %% 10 <> 0 OR j < (f.id / 10) %% 3)
    """,
    """
    INSERT INTO annotate_vote (face_id, study_id, coder_id, assignment_id, gender, race,
        age_band, glasses, quality, seconds_taken, created_at, non_blind)
    SELECT a.face_id, %(study)s, a.coder_id, a.id,
        CASE WHEN abs(hashtext(a.face_id || ':' || a.coder_id)) %% 100 < 47 THEN 'female'
             WHEN abs(hashtext(a.face_id || ':' || a.coder_id)) %% 100 < 94 THEN 'male'
             ELSE 'cant_tell' END,
        '', '', '', '', 2.5, a.submitted_at, false
    FROM annotate_assignment a JOIN annotate_face f ON f.id = a.face_id
    WHERE f.study_id = %(study)s
    """,
    """
    INSERT INTO annotate_consensus (face_id, study_id, label, status, counts, n_votes,
        agreement, attributes, updated_at)
    SELECT face_id, %(study)s,
        CASE WHEN top_n > 1 THEN top_label ELSE '' END,
        CASE WHEN top_n > 1 THEN 'agreed' ELSE 'adjudication' END,
        counts, n, top_n::float / n, '{}', now()
    FROM (
        SELECT face_id, sum(c)::int AS n, jsonb_object_agg(gender, c) AS counts,
            max(c) AS top_n, (array_agg(gender ORDER BY c DESC))[1] AS top_label
        FROM (
            SELECT v.face_id, v.gender, count(*) AS c
            FROM annotate_vote v JOIN annotate_face f ON f.id = v.face_id
            WHERE f.study_id = %(study)s
            GROUP BY v.face_id, v.gender
        ) per_label
        GROUP BY face_id
    ) per_face
    WHERE n >= 3
    """,
    """
    UPDATE annotate_face f SET
        slots_taken = (SELECT count(*) FROM annotate_assignment a WHERE a.face_id = f.id),
        coding_status = COALESCE(
            (SELECT CASE c.status WHEN 'agreed' THEN 'complete' ELSE 'adjudication' END
             FROM annotate_consensus c WHERE c.face_id = f.id), 'open')
    WHERE f.study_id = %(study)s
    """,
]


def build(faces: int):
    """A study of `faces` faces with its votes; returns it and its researcher's id."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from annotate.models import Study
    from annotate.roles import Role, groups_ensure

    groups = groups_ensure()
    study = Study.objects.create(slug=f"pages-{faces}", title=f"Pages {faces}")
    User = get_user_model()
    coders = User.objects.bulk_create(
        [User(username=f"pages-{faces}-coder-{i}") for i in range(CODERS)]
    )
    researcher = User.objects.create(username=f"pages-{faces}-researcher")
    groups[Role.CODER].user_set.add(*coders)
    groups[Role.RESEARCHER].user_set.add(researcher)
    study.members.add(*coders)
    study.members.add(researcher, through_defaults={"role": "researcher"})
    params = {
        "study": study.pk,
        "images": faces // 2,
        "coders": [c.pk for c in coders],
        "n_coders": CODERS,
    }
    with connection.cursor() as cursor:
        for statement in FILL_SQL:
            cursor.execute(statement, params)
        cursor.execute("ANALYZE")
    return study, researcher.pk


def summaries_refresh(study) -> None:
    """What a worker would have done by the time a researcher looks (where summaries exist)."""
    try:
        from annotate.services.summaries import study_summaries_refresh
    except ImportError:  # a version of Facet without stored summaries
        return
    study_summaries_refresh(study_id=study.pk)


def page_urls(slug: str) -> dict[str, str]:
    from django.urls import reverse

    return {
        "study": reverse("annotate:study_detail", args=[slug]),
        "agreement": reverse("annotate:agreement", args=[slug]),
        "home": reverse("home"),
    }


def median_ms(client, url: str, repeat: int) -> float:
    response = client.get(url)  # warm-up
    assert response.status_code == 200, (url, response.status_code)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return round(statistics.median(times), 1)


FIRST_VIEW = """
import json, sys, time
import config.wsgi  # what gunicorn --preload loads before it forks the workers
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
client = Client()
client.cookies["sessionid"] = sys.argv[2]
started = time.perf_counter()
response = client.get(sys.argv[1])
elapsed = (time.perf_counter() - started) * 1000
assert response.status_code == 200, response.status_code
print(json.dumps(elapsed))
"""


def first_view_ms(url: str, researcher_id: int, env: dict[str, str]) -> float:
    """The first request of a fresh process that loaded the WSGI module (median of 3)."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.get(pk=researcher_id))
    session = client.cookies["sessionid"].value
    times = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", FIRST_VIEW, url, session],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise SystemExit(f"first view failed:\n{out.stderr[-3000:]}")
        times.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return round(statistics.median(times), 1)


def pages_ms(slug: str, researcher_id: int, repeat: int) -> dict[str, float]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.get(pk=researcher_id))
    urls = page_urls(slug)
    return {f"{page}_ms": median_ms(client, urls[page], repeat) for page in PAGES}


def measure(faces: int, repeat: int, env: dict[str, str]) -> dict:
    started = time.perf_counter()
    study, researcher_id = build(faces)
    build_s = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    summaries_refresh(study)
    refresh_s = round(time.perf_counter() - started, 1)
    times = pages_ms(study.slug, researcher_id, repeat)
    times["first_study_ms"] = first_view_ms(page_urls(study.slug)["study"], researcher_id, env)
    return {
        "faces": faces,
        "build_s": build_s,
        "refresh_s": refresh_s,
        **times,
        "slug": study.slug,
        "researcher_id": researcher_id,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=7)
    database_arguments(parser, "pages")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    name = database_name(args, "pages")
    url = database_recreate(base_url=args.base_url, name=name)
    with bench_dir() as folder:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "FACET_VAR_DIR": str(folder),
            "FACET_STATIC_ROOT": str(ROOT / "static"),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_DEBUG": "0",
            "FACET_LOG_LEVEL": "WARNING",
            "FACET_SUMMARY_MAX_AGE_S": "3600",
        }
        os.environ.update(env)
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection
        from django.test.utils import setup_test_environment

        setup_test_environment()
        call_command("migrate", verbosity=0)
        try:
            results = [measure(n, args.repeat, env) for n in sizes]
            # The smallest study again, now that the largest shares the database with it.
            small = results[0]
            beside = pages_ms(small["slug"], small["researcher_id"], args.repeat)
        finally:
            connection.close()
            if not args.keep:
                database_drop(base_url=args.base_url, name=name)
    small, large = results[0], results[-1]
    line: dict = {"database": "postgresql", "sizes": [r["faces"] for r in results]}
    for r in results:
        hidden = ("faces", "slug", "researcher_id")
        line[str(r["faces"])] = {k: v for k, v in r.items() if k not in hidden}
    line[f"{small['faces']}_beside_{large['faces']}"] = beside
    for key in ("study_ms", "agreement_ms", "home_ms", "first_study_ms"):
        line[f"{key.removesuffix('_ms')}_ratio"] = round(large[key] / max(small[key], 0.1), 2)
    print(json.dumps(line))


if __name__ == "__main__":
    main()
