"""The emulated AWS account of the aws tests (``tools.aws.emulator``), and the EC2 twin behind it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tools.aws import emulator
from tools.aws.emulator import TWIN_FILTER, TWIN_SETTINGS
from tools.aws.twin import Twin

__all__ = ["TWIN_FILTER", "TWIN_SETTINGS"]


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    with emulator.server() as url:
        yield url


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh emulated account for one test; boto3 and Kiln reach it through AWS_ENDPOINT_URL."""
    emulator.reset(moto_url)
    for key, value in emulator.environment(moto_url).items():
        monkeypatch.setenv(key, value)
    return moto_url


@pytest.fixture
def twin(aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Twin]:
    """The EC2 twin beside the emulator: a 127.100.0.0/16 VPC whose instances are real local VMs.

    Kiln reaches them with ``ssh_interface = private_ip`` in the subnet its
    ``vpc_filter``/``subnet_filter`` choose, as a Jenkins agent inside a VPC would.
    """
    from pipeline import config
    from pipeline.targets.local import foundation

    emulator.twin_network()
    paths = config.default_paths()
    recipe = foundation.Recipe.load(ROOT / "packer" / "foundation")
    (tmp_path / "logs").mkdir(exist_ok=True)
    disk = foundation.ensure(recipe, paths.cache, tmp_path / "logs" / "foundation.log")
    seeded = emulator.seeded_amis()
    for key, value in TWIN_SETTINGS.items():
        monkeypatch.setenv(key, value)
    with Twin(aws, ["us-east-1"], disk, seeded, tmp_path / "twin", logs=tmp_path / "twin-logs") as running:
        yield running
    assert running.running() == [], "a twin VM outlived its fixture"
