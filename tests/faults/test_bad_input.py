"""The bad-input corpus (``bad_input.json``): each case exits non-zero with one line that says what,
where and how to fix (the hint written in the case), prints only what the case allows on stdout, no
traceback, and leaves the catalog and its write-ahead log byte for byte as they were."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.catalog import Artifact, Catalog
from tests.conftest import ROOT, copy_project

pytestmark = pytest.mark.faults
CASES = json.loads((Path(__file__).parent / "bad_input.json").read_text())
INVOKE = str(Path(sys.executable).parent / "invoke")


def seed_catalog(path: Path) -> dict[str, str]:
    refs = {}
    with Catalog.open(path) as cat:
        for label, status in (("good", "verified"), ("failed", "failed"), ("revoked", "verified")):
            v = cat.begin_bake(name="base", parent=None, fingerprint="sha256:" + "0" * 64, git_commit="c",
                               git_dirty=False, run_id="r", log_dir="/l")
            cat.add_artifact("base", v, Artifact(target="local", id=f"sha256:{label}", path=f"/s/{label}.qcow2"))
            cat.set_status("base", v, status)
            refs[label] = v
        cat.revoke("base", refs["revoked"], reason="test", cascade=False)
    return refs


def snapshot(path: Path) -> bytes | str:
    return path.read_bytes() if path.is_file() else "directory" if path.is_dir() else "absent"


def test_the_corpus_is_big_enough():
    assert len(CASES) >= 30 and len({c["id"] for c in CASES}) == len(CASES)


def fill(text: str, refs: dict[str, str]) -> str:
    """``text`` with ``{name}`` replaced by the case's values (other braces are the message's own)."""
    for name, value in refs.items():
        text = text.replace(f"{{{name}}}", value)
    return text


def catalog_files(home: Path) -> dict[str, bytes | str]:
    """The catalog and its write-ahead log, as a failed command must leave them."""
    return {name: snapshot(home / name) for name in ("catalog.db", "catalog.db-wal")}


def prepare(case: dict, tmp_path: Path) -> tuple[Path, dict[str, str], dict[str, str]]:
    """The project, KILN_HOME and environment a case runs in; returns (home, env, refs)."""
    project = copy_project(tmp_path / "project")
    home = tmp_path / "home"
    catalog = home / "catalog.db"
    home.mkdir()
    refs = {"good": "", "failed": "", "revoked": ""}
    if case.get("catalog") == "garbage":
        catalog.write_bytes(b"this is not a catalog\n" * 50)
    elif case.get("catalog") == "directory":
        catalog.mkdir()
    else:
        refs = seed_catalog(catalog)
    toml_lines = len((project / "kiln.toml").read_text().splitlines())
    if "kiln_toml" in case:
        with open(project / "kiln.toml", "a") as fh:
            fh.write(case["kiln_toml"])
    for rel, text in case.get("files", {}).items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(text)
    for rel, text in case.get("tmp_files", {}).items():
        (tmp_path / rel).write_text(text)
    for rel, (old, new) in case.get("edit", {}).items():
        text = (project / rel).read_text()
        assert old in text, f"{rel} no longer contains {old!r}"
        (project / rel).write_text(text.replace(old, new, 1))
    tool_bin = tmp_path / "bin"  # the bake's tools, but none of the foundation's
    tool_bin.mkdir()
    for tool in ("packer", "qemu-system-x86_64", "qemu-img", "xorriso", "ssh-keygen", "ssh", "git"):
        (tool_bin / tool).symlink_to(shutil.which(tool))
    where = {"venv_bin": str(Path(sys.executable).parent), "tool_bin": f"{tool_bin}:{Path(sys.executable).parent}",
             "tmp": str(tmp_path), "home": str(home), "project": str(project), "appended": str(toml_lines + 1)}
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
    env.update({"KILN_HOME": str(home), "KILN_PROJECT": str(project), "NO_COLOR": "1"})
    env.update({k: v.format(**where) for k, v in case.get("env", {}).items()})
    return home, env, {**refs, **where}


def run_case(case: dict, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, str], bool]:
    """Run one case: what it printed, the values its expectations may name, and whether the catalog is as it was."""
    home, env, refs = prepare(case, tmp_path)
    before = catalog_files(home)
    args = [a.format(**refs) for a in case["args"]]
    done = subprocess.run([INVOKE, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    return done, refs, catalog_files(home) == before


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_input(case, tmp_path):
    done, refs, catalog_unchanged = run_case(case, tmp_path)
    assert done.returncode != 0, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    line = lines[0]
    assert line.startswith("kiln: error: "), line
    what, _, hint = line.removeprefix("kiln: error: ").partition(" — ")
    assert fill(case["expect"], refs) in what, line
    assert fill(case.get("expect_also", ""), refs) in line, line
    # Every hint is part of the expectation: a case whose line says how to fix it names the words.
    assert bool(hint) == ("hint" in case), f"hint {hint!r} not in the case" if hint else "the hint is gone"
    assert fill(case.get("hint", ""), refs) in hint, line
    assert (case["stdout"] in done.stdout) if "stdout" in case else done.stdout == "", done.stdout
    assert "Traceback" not in done.stderr + done.stdout
    assert catalog_unchanged
