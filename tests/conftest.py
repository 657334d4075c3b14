"""Shared fixtures: the repository root and a throwaway copy of the project."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests import lanes
from tools.aws.emulator import TWIN_SUBNET_ENV, twin_subnet_of_lane

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """Every bake a test starts keeps its catalog in the test's own KILN_HOME, even where the shell that runs
    pytest shares a catalog (KILN_CATALOG) with other homes; each lane's EC2 twin binds its own subnet."""
    os.environ.pop("KILN_CATALOG", None)
    os.environ[TWIN_SUBNET_ENV] = twin_subnet_of_lane(os.environ.get("PYTEST_XDIST_WORKER", "gw0"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fast tests first, the long chains last, in their lanes' order (``tests/lanes.py``)."""
    items.sort(key=lambda item: lanes.rank(item.nodeid))


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """With ``--dist loadscope`` (``./setup.sh test``), the scopes are the lanes of ``tests/lanes.py``."""
    return lanes.scheduler(config, log) if config.getvalue("dist") == "loadscope" else None


@pytest.fixture(scope="session")
def root() -> Path:
    """The Kiln repository."""
    return ROOT


def copy_project(dest: Path) -> Path:
    """Copy the parts of the project a bake reads (config, packer, playbooks, specs)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("kiln.toml",):
        shutil.copy2(ROOT / name, dest / name)
    for name in ("packer", "playbooks", "specs"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """A writable copy of the project, for tests that change its config."""
    return copy_project(tmp_path / "project")
