"""What the chain tests share: ``invoke`` run as a user runs it, and one image's records picked from an export."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, copy_project

INVOKE = str(Path(sys.executable).parent / "invoke")


def invoke(*args: str, env: dict[str, str], timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    """``invoke ARGS`` from the repository, with no terminal, its output captured."""
    return subprocess.run([INVOKE, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def images(export: dict, name: str) -> list[dict]:
    """The records of image ``name`` in a catalog export, oldest first."""
    return [i for i in export["images"] if i["name"] == name]


def probe(tmp_path: Path, tasks: str, spec: str) -> Path:
    """A copy of the project with a small image ``probe`` on base: ``tasks`` its play's tasks, ``spec`` its spec."""
    project = copy_project(tmp_path / "project")
    (project / "playbooks/probe.yml").write_text(
        "---\n- name: Probe\n  hosts: all\n  become: true\n  gather_facts: false\n"
        "  tasks:\n" + tasks)
    (project / "specs/probe").mkdir()
    (project / "specs/probe/test_probe.py").write_text(spec)
    with open(project / "kiln.toml", "a") as fh:
        fh.write('\n[images.probe]\nparent = "base"\n')
    return project
