"""Load on the whole stack: gunicorn + PostgreSQL + Redis broker + a Celery worker process,
N coders voting over HTTP and a researcher browsing pages, for a bounded time; then the
invariants are checked from the database.

Prints one JSON line:
  coders, seconds, votes, errors, lost_votes, over_assigned, duplicate_votes, p95_ms
`p95_ms` is the 95th percentile of the coders' vote requests; `errors` counts failed
requests of coders and researcher and queue round trips (health pings) the worker never
answered. Example:
  .venv/bin/python bench/load.py --coders 50 --seconds 60
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time

import _stack

RESEARCHER_PAGES = ("annotate:study_detail", "annotate:agreement", "modeling:gallery")


def researcher_urls(slug: str) -> list[str]:
    """The pages the researcher browses; the gallery only where this build has one."""
    from django.urls import NoReverseMatch, reverse

    urls = []
    for name in RESEARCHER_PAGES:
        for attempt in ({"args": [slug]}, {"kwargs": {"slug": slug}}, {}):
            try:
                urls.append(reverse(name, **attempt))
                break
            except NoReverseMatch:
                continue
        else:
            _stack.logger.warning("skipping %s: no such page in this build", name)
    return urls


def researcher_run(*, session, base: str, urls: list[str], deadline: float, tally) -> None:
    i = 0
    while time.monotonic() < deadline:
        url = urls[i % len(urls)]
        i += 1
        try:
            start = time.perf_counter()
            response = session.get(base + url, timeout=60)
            elapsed = (time.perf_counter() - start) * 1000
            if response.status_code != 200:
                tally.error(f"researcher {url} {response.status_code}")
            with tally.lock:
                tally.page_latencies_ms.append(elapsed)
        except Exception as exc:  # noqa: BLE001 - counted
            tally.error(f"researcher {url} {type(exc).__name__}: {exc}")
        time.sleep(0.2)


def pinger_run(*, session, base: str, deadline: float, pings: list[int], tally) -> None:
    """An admin sends a queue round trip every 2 s; the worker must answer each."""
    while time.monotonic() < deadline:
        try:
            response = session.post(f"{base}/health/ping/", json={}, timeout=30)
            if response.status_code == 200:
                pings.append(int(response.json()["id"]))
            else:
                tally.error(f"ping {response.status_code} {response.text[:200]}")
        except Exception as exc:  # noqa: BLE001 - counted
            tally.error(f"ping {type(exc).__name__}: {exc}")
        time.sleep(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--coders", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--faces", type=int, default=20000)
    parser.add_argument("--attributes", default="glasses")
    parser.add_argument("--workers", type=int, default=4)  # as docker-compose's web service
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--port", type=int, default=int(os.environ.get("FACET_BENCH_PORT", 8121)))
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("FACET_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    _stack.database_arguments(parser, "load")
    args = parser.parse_args()
    name = _stack.database_name(args, "load")
    attributes = [a for a in args.attributes.split(",") if a]

    import redis

    redis.Redis.from_url(args.redis_url, socket_connect_timeout=3).flushdb()
    os.environ["CELERY_BROKER_URL"] = args.redis_url
    url = _stack.database_recreate(base_url=args.base_url, name=name)
    try:
        with _stack.bench_dir() as var_dir:
            _stack.django_setup(url, var_dir)
            study = _stack.study_populate(
                faces=args.faces, coders=args.coders, attributes=attributes
            )
            urls = researcher_urls(study.slug)
            env = _stack.service_env(url, var_dir, {"CELERY_BROKER_URL": args.redis_url})
            worker = _stack.worker_start(env=env, var_dir=var_dir, hostname="bench-load@%h")
            try:
                server = _stack.gunicorn_start(
                    url=url,
                    port=args.port,
                    workers=args.workers,
                    threads=args.threads,
                    var_dir=var_dir,
                    env={"CELERY_BROKER_URL": args.redis_url},
                )
                try:
                    tally = _stack.Tally()
                    sessions = _stack.sessions_login(
                        server.url,
                        [f"bench-coder-{i}" for i in range(args.coders)]
                        + ["bench-researcher", "bench-admin"],
                    )
                    *coders, researcher, admin = sessions
                    pings: list[int] = []
                    started = time.monotonic()
                    deadline = started + args.seconds
                    threads = _stack.coder_threads(
                        coders,
                        base=server.url,
                        slug=study.slug,
                        deadline=deadline,
                        attributes=attributes,
                        tally=tally,
                    )
                    threads.append(
                        threading.Thread(
                            target=researcher_run,
                            kwargs={
                                "session": researcher,
                                "base": server.url,
                                "urls": urls,
                                "deadline": deadline,
                                "tally": tally,
                            },
                        )
                    )
                    threads.append(
                        threading.Thread(
                            target=pinger_run,
                            kwargs={
                                "session": admin,
                                "base": server.url,
                                "deadline": deadline,
                                "pings": pings,
                                "tally": tally,
                            },
                        )
                    )
                    _stack.threads_run(threads)
                    elapsed = time.monotonic() - started
                finally:
                    server.stop()
                unanswered = _pings_wait(pings, timeout=30)
            finally:
                _stack.process_stop(worker)
            for _ in range(unanswered):
                tally.error("health ping never answered by the worker")
            checks = _stack.invariants_check(study=study, acked=tally.acked)
            from django.db import connections

            connections.close_all()
    finally:
        if not args.keep:
            _stack.database_drop(base_url=args.base_url, name=name)
    print(
        json.dumps(
            {
                "coders": args.coders,
                "seconds": round(elapsed, 1),
                "votes": len(tally.acked),
                "errors": tally.errors,
                **checks,
                "p95_ms": round(_stack.percentile(tally.latencies_ms, 0.95), 1),
            }
        )
    )
    _stack.logger.warning(
        "researcher pages: %d, p95 %.0f ms; pings sent %d; first errors: %s",
        len(tally.page_latencies_ms),
        _stack.percentile(tally.page_latencies_ms, 0.95),
        len(pings),
        tally.error_samples,
    )


def _pings_wait(pings: list[int], *, timeout: float) -> int:
    from annotate.models import HealthPing

    deadline = time.monotonic() + timeout
    while True:
        missing = HealthPing.objects.filter(pk__in=pings, received_at__isnull=True).count()
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(0.5)


if __name__ == "__main__":
    main()
