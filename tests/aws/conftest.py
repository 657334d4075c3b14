"""A moto server on 127.0.0.1: real HTTP, real boto3 — the emulated AWS account of the aws tests."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator

import pytest

os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
os.environ.setdefault("MOTO_ENABLE_AMI_VALIDATION", "true")

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIAKILNTESTONLY0000", "AWS_SECRET_ACCESS_KEY": "kiln-test-secret-not-real",
                    "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh emulated account for one test; boto3 and Kiln reach it through AWS_ENDPOINT_URL."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"), timeout=30)
    for key, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return moto_url
