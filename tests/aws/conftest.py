"""A moto server on 127.0.0.1: real HTTP, real boto3, real Packer — the emulated AWS account of the aws tests.

The account is seeded with two of Debian's bookworm AMIs (``data/debian-amis.json``).
One realism fix: moto describes every AMI it creates with ``root_device_type =
standard`` where EC2 says ``ebs`` for an EBS-backed image, and Packer refuses a
non-EBS source — so a base → app chain could not be built on the emulator. The
server here reports ``ebs`` for images created from instances, as EC2 does.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
os.environ.setdefault("MOTO_AMIS_PATH", str(Path(__file__).parent / "data" / "debian-amis.json"))
os.environ.setdefault("MOTO_ENABLE_AMI_VALIDATION", "true")

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIAKILNTESTONLY0000", "AWS_SECRET_ACCESS_KEY": "kiln-test-secret-not-real",
                    "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    import logging

    from moto.ec2.models import amis

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.server import ThreadedMotoServer

    original = amis.Ami.__init__

    def ebs_backed(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        original(self, *args, **kwargs)
        if kwargs.get("instance") is not None or kwargs.get("source_ami") is not None:
            self.root_device_type = "ebs"

    amis.Ami.__init__ = ebs_backed
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        amis.Ami.__init__ = original


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh emulated account for one test; boto3 and Kiln reach it through AWS_ENDPOINT_URL."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"), timeout=30)
    for key, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return moto_url
