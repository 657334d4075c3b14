"""A full disk during a build: one clear line, and nothing half-made left in the image store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.faults
INVOKE = str(Path(sys.executable).parent / "invoke")


# Each builder writes the layer where KILN_HOME is: a file system too small for what the build writes.
ROOM = {"packer": "200m", "chroot": "40m"}


@pytest.fixture(params=sorted(ROOM))
def small_home(tmp_path, request):
    home = tmp_path / "home"
    home.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={ROOM[request.param]}", "kiln-full", str(home)], check=True)
    try:
        yield home, request.param
    finally:
        subprocess.run(["umount", "-l", str(home)], check=False)


@pytest.mark.root
def test_full_disk_during_the_build(small_home):
    small_home, builder = small_home
    env = {**os.environ, "KILN_HOME": str(small_home), "NO_COLOR": "1"}
    done = subprocess.run([INVOKE, "bake", "base", "--builder", builder], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1800, stdin=subprocess.DEVNULL)
    assert done.returncode == 1, done.stdout + done.stderr
    [line] = [ln for ln in done.stderr.splitlines() if ln.startswith("kiln: error:")]
    assert "the disk is full" in line and "KILN_HOME" in line
    assert "Traceback" not in done.stderr
    store = small_home / "images"
    assert not store.exists() or not [p for p in store.rglob("*") if p.is_file()]
    assert not [p for p in (small_home / "runs").iterdir()]
    doc = json.loads(subprocess.run([INVOKE, "catalog.export"], cwd=ROOT, env=env, capture_output=True, text=True,
                                    timeout=60).stdout)
    assert [i["status"] for i in doc["images"]] == ["failed"]
