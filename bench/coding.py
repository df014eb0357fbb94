"""Coding throughput on the real stack: gunicorn on PostgreSQL, N coders voting over HTTP.

Prints one JSON line:
  coders, think_ms, votes_per_s, p50_ms, p95_ms, errors, lost_votes, over_assigned,
  duplicate_votes, queries_per_vote, cpu_ms_per_vote, client_cpu_ms_per_vote,
  database_cpu_ms_per_vote, box_busy, offered_per_s, bare_request_cpu_ms, cpu_vote_to_bare,
  sessions, analyze_every_s
(latencies are of the vote request, which also hands out the next faces). The invariants are
checked in the database after the run.

queries_per_vote: SQL statements the web workers ran while serving vote requests answered 200,
per such request, counted in the workers themselves (bench/gunicorn_count.py: a Django
execute wrapper; BEGIN/COMMIT and the connection health check are not in it).
cpu_ms_per_vote: user + system CPU time of the gunicorn worker processes over the timed part
(/proc/<pid>/stat), per vote; it includes the few calls for work outside votes.
client_cpu_ms_per_vote: CPU of this process (the coders' HTTP clients) per vote, and
database_cpu_ms_per_vote: of every PostgreSQL process on the machine, backends that ended in
the run included (the server process counts its reaped children); box_busy: the share of all
cores busy over the timed part (/proc/stat). The coders share the machine with the server: a
crowd's browsers would not.
bare_request_cpu_ms: this run's baseline, measured after the timed part on the same workers:
CPU per request for a missing page (404) asked by signed-in coders (the same middleware and
session as a vote, and the user's row, which a vote through its grant does not load:
annotate.access.vote_endpoint); cpu_vote_to_bare is cpu_ms_per_vote over it,
a figure that holds when the machine's speed drifts (not with --kill-worker-at).
analyze_every_s: the run ANALYZEs the tables coding writes this often (--analyze-every,
default 10 s), as autovacuum does on a live server once a minute: a run is shorter than that,
and plans made on statistics from before the first lease believe those tables empty (0: never,
a new database's first minute).
sessions: where the web workers read sessions: "redis cache" with --cache-url (cached_db, as
docker-compose runs; one statement fewer per request), else "database".
offered_per_s: the load the coders offer, coders / (think time + mean vote latency); with
think time, votes_per_s should be close to it. By default the coders vote back to back (a closed
loop: the server's capacity, and by Little's law a mean latency of coders / votes_per_s);
--think-ms gives them time to look at each face, as people take. Example:
  .venv/bin/python bench/coding.py --coders 50 --seconds 30
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
from pathlib import Path

import _stack

PRIOR_FACES = """
INSERT INTO annotate_face (study_id, origin, crop, crop_sha256, original_name, detector,
    detector_score, phash, crop_print, coding_status, votes_target, slots_taken, priority,
    created_at)
SELECT %(study)s, 'imported', 'faces/prior-' || g || '.jpg', lpad(g::text, 64, 'p'), '', '', 0,
    '', '', 'complete', %(coders)s, %(coders)s, 0, now() - interval '30 days'
FROM generate_series(1, %(n)s) AS g
RETURNING id
"""
PRIOR_VOTES = """
WITH a AS (
    INSERT INTO annotate_assignment (face_id, coder_id, status, leased_at, expires_at,
        submitted_at, gold)
    SELECT f, c, 'submitted', now() - interval '30 days', now() - interval '30 days',
        now() - interval '30 days', false
    FROM unnest(%(faces)s::bigint[]) AS f, unnest(%(coder_ids)s::bigint[]) AS c
    RETURNING id, face_id, coder_id
)
INSERT INTO annotate_vote (face_id, study_id, coder_id, assignment_id, gender, race, age_band,
    glasses, quality, seconds_taken, created_at, non_blind)
SELECT face_id, %(study)s, coder_id, id, 'female', '', '', '', '', 2.0,
    now() - interval '30 days', false
FROM a
"""


BARE_CLIENTS = 4
BARE_REQUESTS = 400


def bare_request_cpu_ms(base: str, sessions: list, workers: list[int]) -> float:
    """This run's baseline: web-worker CPU per request for a page that does not exist, asked
    by signed-in coders, so it passes the same middleware and session as a vote (and loads the
    user's row, which a vote through its grant does not)."""

    def ask(session) -> None:
        for _ in range(BARE_REQUESTS // len(sessions)):
            session.get(f"{base}/no-such-page/", timeout=30)

    before = _stack.cpu_seconds(workers)
    _stack.threads_run([threading.Thread(target=ask, args=(s,)) for s in sessions])
    return (_stack.cpu_seconds(workers) - before) * 1000 / BARE_REQUESTS


def prior_votes_add(*, study, per_coder: int) -> None:
    """`per_coder` faces every coder of the study voted on before (all coders on the same
    faces, each face complete with as many votes as coders), then fresh planner statistics."""
    from django.db import connection

    coder_ids = list(study.memberships.filter(role="coder").values_list("user_id", flat=True))
    with connection.cursor() as cursor:
        cursor.execute(PRIOR_FACES, {"study": study.pk, "coders": len(coder_ids), "n": per_coder})
        faces = [row[0] for row in cursor.fetchall()]
        cursor.execute(PRIOR_VOTES, {"study": study.pk, "faces": faces, "coder_ids": coder_ids})
        cursor.execute("VACUUM ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--coders", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument(
        "--think-ms",
        type=float,
        default=0,
        help="mean time a coder looks at a face before voting (default 0: back to back)",
    )
    parser.add_argument("--faces", type=int, default=20000)
    parser.add_argument("--attributes", default="glasses", help="comma-separated, or empty")
    # docker-compose's web service: 4 sync workers. 3 gthread workers × 4 threads served less
    # (94-111 votes/s, p95 690-990 ms): keep-alive connections piled onto one process.
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker")
    parser.add_argument("--port", type=int, default=int(os.environ.get("FACET_BENCH_PORT", 8120)))
    parser.add_argument(
        "--cache-url",
        default=os.environ.get("FACET_CACHE_URL", ""),
        help="FACET_CACHE_URL for the web workers (sessions read through that Redis, as "
        "docker-compose runs); default $FACET_CACHE_URL, empty: sessions in the database",
    )
    parser.add_argument(
        "--kill-worker-at",
        type=float,
        default=None,
        help="SIGKILL one web worker this many seconds in, while votes are in flight "
        "(a crash test: every acknowledged vote must be in the database; adds killed_workers)",
    )
    parser.add_argument(
        "--prior-votes",
        type=int,
        default=0,
        help="votes every coder cast in the study before the run, on faces coded to the end "
        "(coders who have worked for weeks: their progress line counts them on every vote)",
    )
    parser.add_argument(
        "--analyze-every",
        type=float,
        default=10,
        help="seconds between ANALYZEs of the tables coding writes during the run, standing "
        "in for autovacuum (default 10; 0: never, the plans of a new database's first minute)",
    )
    _stack.database_arguments(parser, "coding")
    args = parser.parse_args()
    name = _stack.database_name(args, "coding")
    attributes = [a for a in args.attributes.split(",") if a]

    url = _stack.database_recreate(base_url=args.base_url, name=name)
    try:
        with _stack.bench_dir() as var_dir:
            _stack.django_setup(url, var_dir)
            study = _stack.study_populate(
                faces=args.faces, coders=args.coders, attributes=attributes
            )
            if args.prior_votes:
                prior_votes_add(study=study, per_coder=args.prior_votes)
            counts = var_dir / "counts"
            counts.mkdir()
            server = _stack.gunicorn_start(
                url=url,
                port=args.port,
                workers=args.workers,
                threads=args.threads,
                var_dir=var_dir,
                env={"FACET_BENCH_COUNT_DIR": str(counts), "FACET_CACHE_URL": args.cache_url},
                config=Path(__file__).with_name("gunicorn_count.py"),
            )
            try:
                tally = _stack.Tally()
                # Log everyone in first, so the timed part is only coding.
                sessions = _stack.sessions_login(
                    server.url, [f"bench-coder-{i}" for i in range(args.coders)]
                )
                workers = _stack.worker_pids(server)
                cpu_before = _stack.cpu_seconds(workers)
                client_before = time.process_time()
                box_before = _stack.box_cpu()
                database_before = _stack.database_cpu_seconds()
                started = time.monotonic()
                threads = _stack.coder_threads(
                    sessions,
                    base=server.url,
                    slug=study.slug,
                    deadline=started + args.seconds,
                    attributes=attributes,
                    tally=tally,
                    think_s=args.think_ms / 1000,
                )
                killer = None
                if args.kill_worker_at is not None:
                    killer = threading.Timer(
                        args.kill_worker_at, os.kill, (workers[0], signal.SIGKILL)
                    )
                    killer.start()
                with _stack.statistics_kept(url, args.analyze_every):
                    _stack.threads_run(threads)
                if killer is not None:
                    killer.join()
                elapsed = time.monotonic() - started
                cpu = _stack.cpu_seconds(workers) - cpu_before
                client_cpu = time.process_time() - client_before
                box_busy = _stack.box_busy(box_before, _stack.box_cpu())
                database_cpu = _stack.database_cpu_seconds() - database_before
                # A killed worker's replacement is not among `workers`: no baseline then.
                bare_ms = (
                    bare_request_cpu_ms(server.url, sessions[:BARE_CLIENTS], workers)
                    if args.kill_worker_at is None
                    else None
                )
            finally:
                server.stop()
            totals = [json.loads(f.read_text()) for f in counts.glob("*.json")]
            checks = _stack.invariants_check(study=study, acked=tally.acked)
            from django.db import connections

            connections.close_all()
    finally:
        if not args.keep:
            _stack.database_drop(base_url=args.base_url, name=name)
    result = {
        "coders": args.coders,
        "think_ms": args.think_ms,
        "votes_per_s": round(len(tally.latencies_ms) / elapsed, 1),
        "p50_ms": round(_stack.percentile(tally.latencies_ms, 0.5), 1),
        "p95_ms": round(_stack.percentile(tally.latencies_ms, 0.95), 1),
        "errors": tally.errors,
        **checks,
    }
    votes = len(tally.latencies_ms)
    requests = sum(t["vote_requests"] for t in totals)
    mean_s = sum(tally.latencies_ms) / votes / 1000 if votes else float("nan")
    result["queries_per_vote"] = (
        round(sum(t["vote_statements"] for t in totals) / requests, 2) if requests else None
    )
    result["cpu_ms_per_vote"] = round(cpu * 1000 / votes, 2) if votes else None
    result["client_cpu_ms_per_vote"] = round(client_cpu * 1000 / votes, 2) if votes else None
    result["database_cpu_ms_per_vote"] = round(database_cpu * 1000 / votes, 2) if votes else None
    result["box_busy"] = round(box_busy, 2)
    result["offered_per_s"] = round(args.coders / (args.think_ms / 1000 + mean_s), 1)
    if bare_ms is not None and votes:
        result["bare_request_cpu_ms"] = round(bare_ms, 2)
        result["cpu_vote_to_bare"] = round(cpu * 1000 / votes / bare_ms, 2)
    result["sessions"] = "redis cache" if args.cache_url else "database"
    result["analyze_every_s"] = args.analyze_every
    if args.prior_votes:
        result["prior_votes"] = args.prior_votes
    if args.kill_worker_at is not None:
        result["killed_workers"] = 1
    print(json.dumps(result))
    if tally.error_samples:
        _stack.logger.warning("first errors: %s", tally.error_samples)


if __name__ == "__main__":
    main()
