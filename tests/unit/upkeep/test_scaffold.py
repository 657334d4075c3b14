"""invoke new: an image's three files, valid at once; bad names and parents refused in one line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import config
from pipeline.errors import ConfigError
from pipeline.upkeep import scaffold
from tests.conftest import ROOT, copy_project

INVOKE = str(Path(sys.executable).parent / "invoke")


def invoke(project: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KILN_PROJECT": str(project), "KILN_HOME": str(home)}
    return subprocess.run([INVOKE, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)


def test_a_new_image_validates_at_once_and_keeps_the_files_comments(tmp_path):
    project = copy_project(tmp_path / "project")
    before = (project / "kiln.toml").read_text()
    done = invoke(project, tmp_path / "home", "new", "worker", "--forward", "http=8080")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "next: invoke validate, then invoke bake worker"
    after = (project / "kiln.toml").read_text()
    assert after.startswith(before)  # appended: every comment stays
    spec = config.load(project).get("worker")
    assert (spec.parent, dict(spec.forward)) == ("base", {"http": 8080})
    assert "# - name: Install htop" in spec.playbook.read_text()
    assert "def test_worker_says_which_image_it_is(host, expected):" in (spec.specs / "test_worker.py").read_text()
    checked = invoke(project, tmp_path / "home", "validate")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_root_image_and_a_dashed_name(tmp_path):
    project = copy_project(tmp_path / "project")
    scaffold.new_image(project, "edge-proxy", "foundation")
    spec = config.load(project).get("edge-proxy")
    assert spec.parent is None and (spec.specs / "test_edge_proxy.py").exists()


@pytest.mark.parametrize(("name", "parent", "forward", "message"), [
    ("app", "base", "", "image 'app' exists already"),
    ("Worker", "base", "", "invalid image name 'Worker'"),
    ("foundation", "base", "", "invalid image name 'foundation'"),
    ("worker", "ghost", "", "unknown parent 'ghost'"),
    ("worker", "base", "http", "--forward: invalid 'http'"),
])
def test_refusals_write_nothing(tmp_path, name, parent, forward, message):
    project = copy_project(tmp_path / "project")
    before = (project / "kiln.toml").read_text()
    with pytest.raises(ConfigError, match=message):
        scaffold.new_image(project, name, parent, forward)
    assert (project / "kiln.toml").read_text() == before
    assert not (project / "playbooks" / f"{name}.yml").exists() or name == "app"
