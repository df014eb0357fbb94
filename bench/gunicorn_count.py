"""Gunicorn hooks for bench/coding.py: count the SQL statements each web worker runs while
serving vote requests.

A wrapper on the worker's database connection (`connection.execute_wrappers`, the hook
Django's CaptureQueriesContext uses) counts every statement Django sends, per request; after
each request to a `/submit/` URL answered 200 the count is added to the worker's totals,
which the worker writes to `$FACET_BENCH_COUNT_DIR/<pid>.json` when it exits. Not counted:
the transaction commands psycopg sends itself (BEGIN, COMMIT) and Django's per-request
connection health check (`SELECT 1`, CONN_HEALTH_CHECKS), which no execute wrapper sees.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

_request = {"statements": 0}
_totals = {"vote_requests": 0, "vote_statements": 0}


def _count(execute, sql, params, many, context):
    _request["statements"] += 1
    return execute(sql, params, many, context)


def post_fork(server, worker) -> None:
    from django.db import connection

    connection.execute_wrappers.append(_count)


def pre_request(worker, req) -> None:
    _request["statements"] = 0


def post_request(worker, req, environ, resp) -> None:
    if req.path.endswith("/submit/") and str(resp.status).startswith("200"):
        _totals["vote_requests"] += 1
        _totals["vote_statements"] += _request["statements"]


def worker_exit(server, worker) -> None:
    folder = os.environ.get("FACET_BENCH_COUNT_DIR")
    if folder:
        Path(folder, f"{os.getpid()}.json").write_text(json.dumps(_totals))
