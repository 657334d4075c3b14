"""Shared fixtures: the repository root and a throwaway copy of the project."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """Every bake a test starts keeps its catalog in the test's own KILN_HOME, even where the shell that runs
    pytest shares a catalog (KILN_CATALOG) with other homes."""
    os.environ.pop("KILN_CATALOG", None)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked ``root`` fails as another user: CI runs as root, and a skip there would hide a path
    nobody checks."""
    if item.get_closest_marker("root") and os.geteuid() != 0:
        pytest.fail("this test needs root (it mounts file systems): run the suite as root, as CI does",
                    pytrace=False)


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
