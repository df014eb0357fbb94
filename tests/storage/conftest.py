"""A real S3-compatible server for the storage tests: moto's server mode, on a free port of
this machine, started once per session; each test gets its own prefix in one bucket."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import pytest

from config.env import storages_from_url

BUCKET = "facet-test"
REGION = "us-east-1"


@dataclass
class Bucket:
    client: object  # a boto3 S3 client talking to the server
    name: str
    prefix: str

    def keys(self, folder: str = "") -> set[str]:
        """Keys under this test's prefix (+ folder), relative to the prefix."""
        start = f"{self.prefix}/{folder}".rstrip("/")
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=start
        )
        return {
            item["Key"].removeprefix(f"{self.prefix}/")
            for page in pages
            for item in page.get("Contents", [])
        }

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=f"{self.prefix}/{key}")["Body"].read()

    def write(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.name, Key=f"{self.prefix}/{key}", Body=data)


@pytest.fixture(scope="session")
def s3_endpoint():
    """The URL of a moto S3 server running in this process, with the test bucket created."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="facet-test",
        aws_secret_access_key="facet-test-secret",
    ).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint, settings, monkeypatch) -> Bucket:
    """Media and artifacts in the bucket under a prefix of this test's own, configured as
    FACET_STORAGE_URL would configure them."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "facet-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "facet-test-secret")
    prefix = f"run-{uuid.uuid4().hex[:12]}"
    url = f"s3://{BUCKET}/{prefix}?endpoint_url={s3_endpoint}&region_name={REGION}"
    settings.FACET_STORAGE_URL = url
    settings.STORAGES = {**storages_from_url(url), "staticfiles": settings.STORAGES["staticfiles"]}
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name=REGION,
        aws_access_key_id="facet-test",
        aws_secret_access_key="facet-test-secret",
    )
    return Bucket(client, BUCKET, prefix)


@pytest.fixture(scope="module")
def detector():
    """The default detector on the CPU, built once per module."""
    import torch

    from annotate.ingest.detect import detector_make

    torch.set_num_threads(2)
    return detector_make("mtcnn", device="cpu")
