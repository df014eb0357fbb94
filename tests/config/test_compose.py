"""docker-compose.yml cannot run here (no engine); it is checked by reading it."""

from __future__ import annotations

import re
import shlex

import yaml

from tests.conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_it_has_the_services_of_the_deployment():
    assert {"postgres", "redis", "web", "worker", "gpu-worker"} <= set(SERVICES)


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


def test_shared_volumes_and_health_checks():
    for name in ("web", "worker", "gpu-worker"):
        mounts = " ".join(SERVICES[name]["volumes"])
        assert "media:" in mounts and "artifacts:" in mounts, name
    for name in ("postgres", "redis", "web"):
        assert "healthcheck" in SERVICES[name], name
    assert {"media", "artifacts", "pgdata"} <= set(COMPOSE["volumes"])
    for name in ("web", "worker", "gpu-worker"):
        env = SERVICES[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://")
        assert env["CELERY_BROKER_URL"].startswith("redis://")
