"""The real stack for the coding benchmarks: a fresh PostgreSQL database, gunicorn, HTTP coders.

Used by bench/coding.py and bench/load.py. Everything started here is stopped in `close()`;
the benchmark database is dropped unless asked to keep it.
"""

from __future__ import annotations

import contextlib
import http.client
import json as _json
import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
logger = logging.getLogger("bench")
PASSWORD = "bench-pass-123"
DEFAULT_BASE_URL = "postgres://postgres@127.0.0.1:5432/postgres"
SAFE_NAME = re.compile(r"^bench_[a-z0-9_]+$")


def database_arguments(parser, purpose: str) -> None:
    """--base-url, --db-name and --keep, which every PostgreSQL benchmark takes."""
    import os

    parser.add_argument(
        "--base-url",
        default=os.environ.get("DATABASE_URL", DEFAULT_BASE_URL),
        help="PostgreSQL server (its database name is replaced by --db-name)",
    )
    parser.add_argument("--db-name", default=None, help=f"default: bench_<base db>_{purpose}")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")


def database_name(args, purpose: str) -> str:
    base_name = urlparse(args.base_url).path.lstrip("/") or "facet"
    return args.db_name or f"bench_{base_name}_{purpose}".lower()


def database_url(base_url: str, name: str) -> str:
    parsed = urlparse(base_url)
    return urlunparse(parsed._replace(path="/" + name))


def database_recreate(*, base_url: str, name: str) -> str:
    """Drop and create `name` (must start with bench_) on the server of `base_url`."""
    import psycopg

    if not SAFE_NAME.match(name):
        raise SystemExit(f"Benchmark database names must match {SAFE_NAME.pattern}: {name!r}")
    admin = database_url(base_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url(base_url, name)


def database_drop(*, base_url: str, name: str) -> None:
    import psycopg

    if not SAFE_NAME.match(name):
        return
    with psycopg.connect(database_url(base_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def django_setup(url: str, var_dir: Path) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["FACET_VAR_DIR"] = str(var_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("FACET_LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def study_populate(*, faces: int, coders: int, attributes: list[str]):
    """A study with `faces` faces (no image files: the HTTP flow never reads them),
    `coders` coder accounts and one researcher, all sharing one password hash."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from annotate.models import Face, Study
    from annotate.roles import Role, groups_ensure

    groups = groups_ensure()
    study = Study.objects.create(slug="bench", title="Bench", attributes_asked=attributes)
    Face.objects.bulk_create(
        (
            Face(
                study=study,
                crop=f"faces/bench-{i}.jpg",
                crop_sha256=f"{i:064d}",
                votes_target=study.votes_per_face,
            )
            for i in range(faces)
        ),
        batch_size=2000,
    )
    User = get_user_model()
    hashed = make_password(PASSWORD)
    users = User.objects.bulk_create(
        [User(username=f"bench-coder-{i}", password=hashed) for i in range(coders)]
        + [User(username="bench-researcher", password=hashed)]
        + [User(username="bench-admin", password=hashed, is_staff=True, is_superuser=True)]
    )
    groups[Role.CODER].user_set.add(*users[:coders])
    groups[Role.RESEARCHER].user_set.add(users[coders])
    groups[Role.ADMIN].user_set.add(users[coders + 1])
    study.members.add(*users[:coders], users[coders + 1])
    study.members.add(users[coders], through_defaults={"role": "researcher"})
    from django.db import connection

    with connection.cursor() as cursor:  # planner statistics, as a live database has them
        cursor.execute("ANALYZE")
    return study


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    log: Path

    def stop(self) -> None:
        process_stop(self.process)


def process_stop(process: subprocess.Popen) -> None:
    """Stop a process started in its own session, and its children: TERM, then KILL."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def worker_start(
    *, env: dict, var_dir: Path, hostname: str, queues: str = "default,gpu"
) -> subprocess.Popen:
    """A Celery worker process (concurrency 1) on the benchmark's database, once it is ready."""
    from config.celery import worker_argv

    log = var_dir / f"worker-{hostname.split('@')[0]}.log"
    process = subprocess.Popen(
        worker_argv(queues=queues, concurrency=1, hostname=hostname),
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if "ready." in log.read_text(errors="replace"):
            return process
        if process.poll() is not None:
            break
        time.sleep(0.3)
    process_stop(process)
    raise SystemExit(f"Celery worker did not start:\n{log.read_text()[-3000:]}")


def service_env(url: str, var_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "FACET_VAR_DIR": str(var_dir),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "0",
        "FACET_LOG_LEVEL": "WARNING",
        **(extra or {}),
    }
    return env


def gunicorn_start(
    *,
    url: str,
    port: int,
    workers: int,
    threads: int,
    var_dir: Path,
    env: dict | None = None,
    config: Path | None = None,
) -> Server:
    """gunicorn serving Facet on `port`; `config`, a gunicorn config file (hooks)."""
    if not port_free(port):
        raise SystemExit(f"Port {port} is in use; pass --port.")
    log = var_dir / "gunicorn.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--worker-class",
            "gthread" if threads > 1 else "sync",
            "--preload",
            "--log-level",
            "warning",
            "--timeout",
            "60",
            # Above every client's idle gap (the health pinger waits 2 s, gunicorn's default
            # keep-alive): otherwise the server closes a kept-alive connection just as the
            # client reuses it and the request dies with "connection reset by peer".
            "--keep-alive",
            "30",
            *(["--config", str(config)] if config is not None else []),
        ],
        cwd=ROOT,
        env=service_env(url, var_dir, env),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited:\n{log.read_text()[-3000:]}")
        if not port_free(port):
            return server
        time.sleep(0.2)
    server.stop()
    raise SystemExit("gunicorn did not start in 60 s")


def session_login(base: str, username: str):
    import requests

    session = requests.Session()
    # Generous: every login hashes a password, and all coders log in at once.
    session.get(f"{base}/login/", timeout=120)
    token = session.cookies.get("csrftoken")
    response = session.post(
        f"{base}/login/",
        data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/login/"},
        timeout=120,
        allow_redirects=False,
    )
    if response.status_code != 302:
        raise SystemExit(f"login of {username} failed: {response.status_code}")
    session.headers["X-CSRFToken"] = session.cookies.get("csrftoken")
    session.headers["Referer"] = f"{base}/"
    return session


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies_ms: list[float] = field(default_factory=list)
    acked: set[int] = field(default_factory=set)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    page_latencies_ms: list[float] = field(default_factory=list)

    def error(self, text: str) -> None:
        with self.lock:
            self.errors += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(text[:300])


GENDERS = ["female", "female", "male", "male", "cant_tell"]
ATTRIBUTE_VALUES = {
    "race": ["white", "black", "east_asian"],
    "age_band": ["20-29", "30-39", "40-49"],
    "glasses": ["none", "glasses"],
    "quality": ["good", "blurred"],
}


def sessions_login(base: str, usernames: list[str]) -> list:
    """Log everyone in (in parallel) before the timed part starts."""
    sessions: list = [None] * len(usernames)

    def one(i: int) -> None:
        sessions[i] = session_login(base, usernames[i])

    threads_run([threading.Thread(target=one, args=(i,)) for i in range(len(usernames))])
    if any(s is None for s in sessions):
        raise SystemExit("some bench logins failed")
    return sessions


def coder_run(
    *,
    session,
    base: str,
    slug: str,
    deadline: float,
    attributes: list[str],
    tally: Tally,
    think_s: float = 0.0,
) -> None:
    """One coder: take faces and vote on them over HTTP until the deadline or no work.

    `think_s` is the mean time the coder looks at a face before pressing the key (drawn
    uniformly from half to one and a half times it); 0 votes back to back.
    """
    rng = random.Random(id(session))
    items: list[dict] = []
    empty_polls = 0
    while time.monotonic() < deadline:
        try:
            if not items:
                response = session.post(f"{base}/code/{slug}/next/", json={}, timeout=30)
                if response.status_code != 200:
                    tally.error(f"next {response.status_code} {response.text[:200]}")
                    time.sleep(0.1)
                    continue
                items = response.json()["items"]
                if not items:
                    empty_polls += 1
                    if empty_polls > 20:
                        return
                    time.sleep(0.05)
                    continue
            item = items[0]
            if think_s:
                time.sleep(rng.uniform(0.5, 1.5) * think_s)
            body = {"assignment": item["assignment"], "gender": rng.choice(GENDERS)}
            for name in attributes:
                body[name] = rng.choice(ATTRIBUTE_VALUES[name])
            start = time.perf_counter()
            response = session.post(f"{base}/code/{slug}/submit/", json=body, timeout=30)
            elapsed = (time.perf_counter() - start) * 1000
            if response.status_code == 200:
                data = response.json()
                with tally.lock:
                    tally.latencies_ms.append(elapsed)
                    if not data["duplicate"]:
                        tally.acked.add(int(data["vote"]))
                items = data["items"]
            else:
                tally.error(f"submit {response.status_code} {response.text[:200]}")
                items = response.json().get("items", []) if response.status_code == 409 else []
        except Exception as exc:  # noqa: BLE001 - a failed request is an error, not a crash
            tally.error(f"{type(exc).__name__}: {exc}")
            items = []
            time.sleep(0.05)


class JsonClient:
    """A logged-in coder's HTTP client for the timed part: one kept-alive connection and the
    session's cookies and CSRF headers, on http.client. The coders share the cores with the
    server they measure, and through requests they cost 1.2 ms of CPU a vote (this: 0.33)."""

    def __init__(self, session, base: str) -> None:
        parsed = urlparse(base)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.headers = {
            "Cookie": "; ".join(f"{c.name}={c.value}" for c in session.cookies),
            "X-CSRFToken": session.headers["X-CSRFToken"],
            "Referer": session.headers["Referer"],
            "Content-Type": "application/json",
        }
        self.conn: http.client.HTTPConnection | None = None

    def post(self, url: str, json: object, timeout: float) -> JsonReply:
        path, body = urlparse(url).path, _json.dumps(json).encode()
        try:
            return self._post(path, body, timeout)
        except (http.client.RemoteDisconnected, ConnectionError):
            self.conn = None  # the server closed the kept-alive connection: once more, anew
            return self._post(path, body, timeout)

    def _post(self, path: str, body: bytes, timeout: float) -> JsonReply:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        self.conn.request("POST", path, body=body, headers=self.headers)
        response = self.conn.getresponse()
        return JsonReply(response.status, response.read())


@dataclass
class JsonReply:
    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self):
        return _json.loads(self.content)


def coder_threads(sessions, **kwargs) -> list[threading.Thread]:
    """One thread per logged-in session running coder_run with the same keyword arguments,
    each on its own JsonClient (`base` is among the arguments)."""
    return [
        threading.Thread(
            target=coder_run, kwargs={"session": JsonClient(session, kwargs["base"]), **kwargs}
        )
        for session in sessions
    ]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def invariants_check(*, study, acked: set[int]) -> dict[str, int]:
    """lost_votes, over_assigned, duplicate_votes, from the database."""
    from django.db.models import Count

    from annotate.assignment import faces_over_assigned
    from annotate.models import Face, Vote

    live = set(
        Vote.objects.filter(face__study=study, retracted_at__isnull=True).values_list(
            "pk", flat=True
        )
    )
    pairs = (
        Vote.objects.filter(face__study=study, retracted_at__isnull=True)
        .values("face", "coder")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .count()
    )
    too_many = 0
    per_face = (
        Vote.objects.filter(face__study=study, retracted_at__isnull=True)
        .values("face")
        .annotate(n=Count("pk"))
    )
    targets = dict(Face.objects.filter(study=study).values_list("pk", "votes_target"))
    for row in per_face:
        if row["n"] > targets[row["face"]]:
            too_many += 1
    return {
        "lost_votes": len(acked - live),
        "over_assigned": len(faces_over_assigned(study=study)),
        "duplicate_votes": pairs + too_many,
    }


@contextlib.contextmanager
def bench_dir():
    with tempfile.TemporaryDirectory(prefix="facet-bench-") as folder:
        yield Path(folder)


def threads_run(targets: list[threading.Thread]) -> None:
    for t in targets:
        t.start()
    for t in targets:
        t.join()


def worker_pids(server: Server) -> list[int]:
    """The gunicorn worker processes of `server` (children of its master), from /proc."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == server.process.pid:
            pids.append(int(stat.parent.name))
    return pids


def cpu_seconds(pids: list[int], *, reaped: bool = False) -> float:
    """User plus system CPU time of these processes so far (/proc/<pid>/stat utime + stime);
    with `reaped`, also that of their children that ended (cutime + cstime)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
        if reaped:
            total += int(fields[13]) + int(fields[14])
    return total / ticks


@contextlib.contextmanager
def statistics_kept(url: str, every_s: float):
    """ANALYZE the tables coding writes every `every_s` seconds while the block runs, as
    autovacuum does on a live server (after 50 rows and 10 % changed, once a minute): a run
    is shorter than its nap, and a plan made on statistics from before the first lease
    believes those tables empty. 0: never (a new database's first minute)."""
    import psycopg

    if every_s <= 0:
        yield
        return
    stop = threading.Event()

    def keep() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.wait(every_s):
                conn.execute(f"ANALYZE {', '.join(CODING_TABLES)}")

    thread = threading.Thread(target=keep, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


CODING_TABLES = ("annotate_assignment", "annotate_vote", "annotate_face", "annotate_consensus")


def database_cpu_seconds() -> float:
    """CPU time of the PostgreSQL server on this machine so far: every process named
    postgres, with the backends that ended (the server process counts its reaped children,
    so a connection closed mid-run loses nothing)."""
    return cpu_seconds(named_pids("postgres"), reaped=True)


def named_pids(name: str) -> list[int]:
    """Processes whose command name (/proc/<pid>/comm) is `name`, e.g. the database's."""
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == name:
                pids.append(int(comm.parent.name))
        except OSError:
            continue
    return pids


def box_cpu() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def box_busy(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of the machine's CPU time (all cores) that was busy between two box_cpu()."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total else 0.0
