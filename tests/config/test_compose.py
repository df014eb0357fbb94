"""docker-compose.yml and deploy/nginx.conf cannot run here (no engine); they are checked by
reading them."""

from __future__ import annotations

import re
import shlex

import yaml
from django.conf import settings
from django.urls import reverse

from config.request_limits import BODY_MARGIN
from tests.conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = ("web", "worker", "gpu-worker")
NGINX_SIZES = {"k": 1024, "m": 1024**2, "g": 1024**3}


def _nginx(text: str) -> list[tuple[str, list[str], list]]:
    """nginx configuration as nested (directive, arguments, block) tuples, comments dropped."""
    tokens = re.findall(r'"[^"]*"|[{};]|[^\s{};]+', re.sub(r"#[^\n]*", "", text))

    def block(i: int) -> tuple[list, int]:
        items, words = [], []
        while i < len(tokens):
            token, i = tokens[i], i + 1
            if token == "}":
                return items, i
            if token in ";{":
                children, i = block(i) if token == "{" else ([], i)
                items.append((words[0], words[1:], children))
                words = []
            else:
                words.append(token.strip('"'))
        return items, i

    return block(0)[0]


def _find(items: list, name: str) -> list[tuple[str, list[str], list]]:
    return [item for item in items if item[0] == name]


def _one(items: list, name: str) -> list[str]:
    (found,) = _find(items, name)
    return found[1]


def _bytes(size: str) -> int:
    unit = size[-1].lower()
    return int(size[:-1]) * NGINX_SIZES[unit] if unit in NGINX_SIZES else int(size)


NGINX = _nginx((ROOT / "deploy" / "nginx.conf").read_text())
(UPSTREAM,) = _find(NGINX, "upstream")
SERVERS = {_find(server[2], "listen")[0][1][0]: server[2] for server in _find(NGINX, "server")}
TLS = SERVERS["443"]
LOCATIONS = {" ".join(args): children for _, args, children in _find(TLS, "location")}


def test_it_has_the_services_of_the_deployment():
    assert {"postgres", "redis", "web", "worker", "gpu-worker", "proxy"} <= set(SERVICES)


def test_app_services_share_one_anchored_definition_and_differ_in_command():
    text = (ROOT / "docker-compose.yml").read_text()
    anchor = re.search(r"&(\w[\w-]*)", text).group(1)
    for name in ("web", "worker", "gpu-worker"):
        assert re.search(rf"^  {name}:\n    <<: \*{anchor}", text, re.M), name
    images = {SERVICES[n]["image"] for n in ("web", "worker", "gpu-worker")}
    assert len(images) == 1
    commands = {" ".join(SERVICES[n]["command"]) for n in ("web", "worker", "gpu-worker")}
    assert len(commands) == 3


def test_workers_listen_on_the_named_queues():
    from config.celery import Queue

    worker = SERVICES["worker"]["command"]
    gpu = SERVICES["gpu-worker"]["command"]
    assert worker[worker.index("-Q") + 1] == Queue.DEFAULT
    assert gpu[gpu.index("-Q") + 1] == Queue.GPU
    assert gpu[gpu.index("--concurrency") + 1] == "1"
    devices = SERVICES["gpu-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]


def test_every_command_exists():
    """Each command's program is one the image has, and its module/app paths exist here."""
    for name in ("web", "worker", "gpu-worker"):
        argv = SERVICES[name]["command"]
        if argv[0] in {"sh", "bash"}:
            argv = shlex.split(argv[-1].split("&&")[-1])
        program = argv[0]
        assert program in {"gunicorn", "celery"}, (name, program)
        if program == "gunicorn":
            module = argv[-1].split(":")[0]
            assert (ROOT / (module.replace(".", "/") + ".py")).exists()
        else:
            assert (
                argv[argv.index("-A") + 1] == "config" and (ROOT / "config" / "celery.py").exists()
            )


def test_shared_storage_and_health_checks():
    """Every app service reaches the same bucket, database and broker; none keeps media or
    artifacts on a volume of its own host."""
    from config.env import storages_from_url

    for name in ("web", "worker", "gpu-worker", "gpu-worker-2"):
        env = SERVICES[name]["environment"]
        options = storages_from_url(env["FACET_STORAGE_URL"])["default"]["OPTIONS"]
        assert options["endpoint_url"] == "http://minio:9000", name
        assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"], name
        assert env["DATABASE_URL"].startswith("postgres://")
        assert env["CELERY_BROKER_URL"].startswith("redis://")
        # Sessions through the one Redis every web process shares, in a db of its own.
        cache = env["FACET_CACHE_URL"]
        assert cache.startswith("redis://redis:6379/") and cache != env["CELERY_BROKER_URL"]
        assert "FACET_MEDIA_ACCEL_REDIRECT" not in env  # refused together with the bucket
        mounts = " ".join(SERVICES[name]["volumes"])
        assert "media" not in mounts and "artifacts" not in mounts, name
        assert SERVICES[name]["depends_on"]["minio-init"]["condition"] == (
            "service_completed_successfully"
        )
    for name in ("postgres", "redis", "minio", "web"):
        assert "healthcheck" in SERVICES[name], name
    assert {"objects", "pgdata"} <= set(COMPOSE["volumes"])


def test_the_bucket_is_made_at_start_by_a_one_shot_service():
    from config.env import storages_from_url

    url = COMPOSE["x-app"]["environment"]["FACET_STORAGE_URL"]
    bucket = storages_from_url(url)["default"]["OPTIONS"]["bucket_name"]
    init = SERVICES["minio-init"]
    assert init["depends_on"]["minio"]["condition"] == "service_healthy"
    assert init["restart"] == "no"
    assert f"mc mb --ignore-existing local/{bucket}" in init["entrypoint"][-1]
    assert init["environment"] == SERVICES["minio"]["environment"]  # the same credentials
    assert "objects:/data" in SERVICES["minio"]["volumes"]


def test_a_second_gpu_worker_takes_the_same_queue_on_another_gpu_when_asked():
    from config.celery import Queue

    text = (ROOT / "docker-compose.yml").read_text()
    anchor = re.search(r"&(\w[\w-]*)", text).group(1)
    assert re.search(rf"^  gpu-worker-2:\n    <<: \*{anchor}", text, re.M)
    second = SERVICES["gpu-worker-2"]
    command = second["command"]
    assert command[command.index("-Q") + 1] == Queue.GPU
    assert command[command.index("--concurrency") + 1] == "1"
    assert second["profiles"] == ["second-gpu"]
    (device,) = second["deploy"]["resources"]["reservations"]["devices"]
    assert device["device_ids"] == ["1"] and "gpu" in device["capabilities"]


def test_only_the_proxy_publishes_ports_and_gunicorn_stays_on_the_compose_network():
    published = {name for name, service in SERVICES.items() if service.get("ports")}
    assert published == {"proxy"}
    assert {p.split(":")[-1] for p in SERVICES["proxy"]["ports"]} == {"443", "80"}
    web = SERVICES["web"]
    assert web["expose"] == ["8000"]
    gunicorn = shlex.split(web["command"][-1].split("&&")[-1])
    assert gunicorn[gunicorn.index("--bind") + 1] == "0.0.0.0:8000"  # inside its container
    assert _one(UPSTREAM[2], "server") == ["web:8000"]
    assert "X-Forwarded-Proto': 'https'" in web["healthcheck"]["test"][-1]
    assert SERVICES["proxy"]["depends_on"]["web"]["condition"] == "service_healthy"


def test_the_proxy_ends_tls_and_redirects_plain_http():
    assert all("ssl" in args for _, args, _ in _find(TLS, "listen"))
    assert _one(SERVERS["80"], "return") == ["301", "https://$host$request_uri"]
    mounts = {v.split(":")[1]: v for v in SERVICES["proxy"]["volumes"]}
    assert mounts["/etc/nginx/conf.d/default.conf"] == (
        "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro"
    )
    assert mounts["/etc/nginx/certs"] == "./deploy/certs:/etc/nginx/certs:ro"
    for directive in ("ssl_certificate", "ssl_certificate_key"):
        assert _one(TLS, directive)[0].startswith("/etc/nginx/certs/")
    assert "deploy/certs" in (ROOT / ".dockerignore").read_text().split()


def test_the_proxy_overwrites_the_forwarded_headers_django_trusts():
    headers = {args[0]: args[1] for _, args, _ in _find(TLS, "proxy_set_header")}
    assert headers["X-Forwarded-Proto"] == "$scheme"
    assert headers["X-Forwarded-For"] == "$remote_addr"
    assert headers["Forwarded"] == headers["X-Forwarded-Host"] == ""
    # A location with its own proxy_set_header would drop all of the server's.
    for path, children in LOCATIONS.items():
        assert not _find(children, "proxy_set_header"), path
    env = COMPOSE["x-app"]["environment"]
    assert env["FACET_TRUSTED_PROXY_COUNT"] == "1"


def test_the_proxy_refuses_bodies_over_facets_limits_before_reading_them():
    assert _bytes(_one(TLS, "client_max_body_size")[0]) == (
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE + BODY_MARGIN
    )
    (upload,) = [path for path in LOCATIONS if path.startswith("~ ")]
    pattern = re.compile(upload[2:])
    assert pattern.search(reverse("annotate:import_new", args=["some-study"]))
    assert not pattern.search(reverse("annotate:agreement", args=["some-study"]))
    assert _bytes(_one(LOCATIONS[upload], "client_max_body_size")[0]) == (
        settings.FACET_MAX_UPLOAD_BYTES
    )


def test_media_go_out_only_through_facet_and_the_bucket_stays_unpublished():
    assert "/protected-media/" not in LOCATIONS
    assert not any("media" in volume for volume in SERVICES["proxy"]["volumes"])
    assert not SERVICES["minio"].get("ports") and not SERVICES["minio"].get("expose")


def test_the_image_serves_what_compose_expects():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^EXPOSE 8000$", dockerfile, re.M)
    static_root = COMPOSE["x-app"]["environment"]["FACET_STATIC_ROOT"]
    assert static_root.startswith("/data/")  # the only folder the image's user may write
    assert "chown facet /data" in dockerfile
