"""``bake --jobs N``: sibling images bake at once, dependency order holds, a failure stays with its descendants.

The bakes are processes of ``tests.unit.fake_baker`` (the fake target: a
text file for an image, the real gate), one per image, as ``invoke bake
--jobs`` starts ``invoke bake IMAGE``: trunk, then branch and twig on it,
and leaf on twig.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.catalog import Catalog
from tests.conftest import ROOT
from tests.unit.test_fake_target import PLAYBOOK, project  # noqa: F401 — the fixture

__all__ = ["project"]


@pytest.fixture
def forest(project: Path) -> Path:  # noqa: F811
    (project / "kiln.toml").write_text('[images.trunk]\n\n[images.branch]\nparent = "trunk"\n\n'
                                       '[images.twig]\nparent = "trunk"\n\n[images.leaf]\nparent = "twig"\n')
    for name in ("twig", "leaf"):
        (project / "playbooks" / f"{name}.yml").write_text(PLAYBOOK.format(name=name))
        (project / "specs" / name).mkdir(parents=True)
        (project / "specs" / name / f"test_{name}.py").write_text("def test_here(host):\n    assert host.file('/')\n")
    (project / "specs" / "trunk" / "test_trunk.py").write_text(
        "import os\n\ndef test_identity_reaches_the_specs(host):\n"
        "    assert os.environ['KILN_IMAGE_NAME'] in ('trunk', 'branch', 'twig', 'leaf')\n")
    return project


def bake(tmp_path: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.unit.fake_baker", *args], cwd=ROOT,
                            env={**os.environ, "KILN_CATALOG": str(tmp_path / "home" / "catalog.db"),
                                 "NO_COLOR": "1", "PYTHONUNBUFFERED": "1", **env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a terminal would


def history(tmp_path: Path) -> dict[str, list[tuple[str, str]]]:
    """Each image's versions' status changes: [(status, at), …] of its newest version."""
    with Catalog.open(tmp_path / "home" / "catalog.db", create=False) as cat:
        return {name: [(h["to"], h["at"]) for h in cat.status_history(name, cat.versions(name)[-1].version)]
                for name in sorted({r.name for r in cat.versions()})}


def summary(out: str) -> list[list[str]]:
    lines = out.splitlines()
    head = max(i for i, line in enumerate(lines) if line.startswith("IMAGE "))
    return [line.split() for line in lines[head + 1:] if line and not line.startswith(("kiln:", "["))]


def test_siblings_bake_at_once_after_their_parent(forest, tmp_path):
    done = bake(tmp_path, "branch,twig", "--jobs", "2", FAKE_BUILD_SECONDS="3")
    out = done.communicate(timeout=300)[0]
    assert done.returncode == 0, out
    seen = history(tmp_path)
    assert {name: [s for s, _ in h] for name, h in seen.items()} == {
        name: ["building", "verified"] for name in ("branch", "trunk", "twig")}
    (_, trunk_done), (branch_start, branch_done), (twig_start, twig_done) = (
        (seen[n][0][1], seen[n][1][1]) for n in ("trunk", "branch", "twig"))
    assert trunk_done <= branch_start and trunk_done <= twig_start  # dependency order
    assert branch_start < twig_done and twig_start < branch_done  # at once
    assert any(line.startswith("[branch] [") for line in out.splitlines())
    assert any(line.startswith("[twig] [") for line in out.splitlines())
    assert sorted(row[0] for row in summary(out)) == ["branch", "trunk", "twig"]
    assert all(row[2] == "verified" for row in summary(out))


def test_without_jobs_the_targets_default_holds(forest, tmp_path):
    one = bake(tmp_path / "one", "branch,twig")
    out = one.communicate(timeout=300)[0]
    assert one.returncode == 0 and not any(line.startswith("[branch] ") for line in out.splitlines()), out
    waits = bake(tmp_path / "waits", "branch,twig", FAKE_DEFAULT_JOBS="2")  # a target whose bakes mostly wait
    out = waits.communicate(timeout=300)[0]
    assert waits.returncode == 0, out
    assert any(line.startswith("[branch] [") for line in out.splitlines())
    assert any(line.startswith("[twig] [") for line in out.splitlines())


def test_a_chain_bakes_one_image_at_a_time_in_one_process_whatever_jobs_says(forest, tmp_path):
    done = bake(tmp_path, "leaf", "--jobs", "2")
    out = done.communicate(timeout=300)[0]
    assert done.returncode == 0, out
    assert not any(line.startswith("[") and "] [" in line for line in out.splitlines()), out  # no image prefix
    assert sorted(row[0] for row in summary(out)) == ["leaf", "trunk", "twig"]
    assert {name: h[-1][0] for name, h in history(tmp_path).items()} == dict.fromkeys(("leaf", "trunk", "twig"),
                                                                                        "verified")


def test_a_failed_sibling_skips_its_descendants_and_the_others_go_on(forest, tmp_path):
    (forest / "specs" / "twig" / "test_twig.py").write_text("def test_broken():\n    assert 1 == 2\n")
    done = bake(tmp_path, "leaf,branch", "--jobs", "2")
    out = done.communicate(timeout=300)[0]
    assert done.returncode == 1, out
    statuses = {name: h[-1][0] for name, h in history(tmp_path).items()}
    assert statuses == {"trunk": "verified", "branch": "verified", "twig": "failed"}  # leaf never started
    [line] = [ln for ln in out.splitlines() if ln.startswith("kiln: error:")]
    assert "2 image(s) not baked: twig (exit 1: kiln: error: " in line
    assert "leaf (skipped: its parent twig failed)" in line
    rows = {row[0]: row for row in summary(out)}
    assert rows["leaf"][2] == "skipped" and rows["twig"][2] == "failed" and rows["branch"][2] == "verified"


def test_fail_fast_stops_the_running_siblings(forest, tmp_path):
    (forest / "specs" / "twig" / "test_twig.py").write_text("def test_broken():\n    assert 1 == 2\n")
    done = bake(tmp_path, "branch,twig", "--jobs", "2", "--fail-fast", FAKE_SLOW_IMAGE="branch",
                FAKE_BUILD_SECONDS="120")
    out = done.communicate(timeout=300)[0]
    assert done.returncode == 1, out
    statuses = {name: h[-1][0] for name, h in history(tmp_path).items()}
    assert statuses == {"trunk": "verified", "branch": "interrupted", "twig": "failed"}
    [line] = [ln for ln in out.splitlines() if ln.startswith("kiln: error:")]
    assert "twig (exit 1: " in line and "branch (stopped: twig failed (--fail-fast))" in line


def test_ctrl_c_stops_every_running_bake_and_nothing_is_left(forest, tmp_path):
    first = bake(tmp_path, "trunk")
    assert first.wait(timeout=300) == 0
    running = bake(tmp_path, "branch,twig", "--jobs", "2", FAKE_BUILD_SECONDS="120")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and running.poll() is None:
        with Catalog.open(tmp_path / "home" / "catalog.db") as cat:  # both hold their lease and have begun
            if len(cat.leases.live()) == 2 and {r.name for r in cat.versions() if r.status == "building"} == {
                    "branch", "twig"}:
                break
        time.sleep(0.2)
    os.kill(running.pid, signal.SIGINT)
    out = running.communicate(timeout=300)[0]
    assert running.returncode == 130, out
    last = [ln for ln in out.splitlines() if ln.startswith("kiln:")][-1]
    assert "interrupted during parallel bakes (stopped: branch, twig)" in last
    statuses = {name: h[-1][0] for name, h in history(tmp_path).items()}
    assert statuses == {"trunk": "verified", "branch": "interrupted", "twig": "interrupted"}
    with Catalog.open(tmp_path / "home" / "catalog.db") as cat:
        assert cat.leases.live() == []
    assert list((tmp_path / "home" / "runs").iterdir()) == []
    assert [p for p in Path("/proc").glob("[0-9]*") if str(tmp_path) in environ_of(p)] == []


def environ_of(proc: Path) -> str:
    try:
        return (proc / "environ").read_bytes().decode(errors="replace")
    except OSError:
        return ""
