"""The CLI edge: tasks exist, bad input gives one line and a non-zero exit, never a traceback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

INVOKE = str(Path(sys.executable).parent / "invoke")


def run(root, *args, home):
    env = {**os.environ, "KILN_HOME": str(home)}
    return subprocess.run([INVOKE, *args], cwd=root, env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def test_list_shows_every_task_with_help(root, tmp_path):
    out = run(root, "--list", home=tmp_path).stdout
    for name in ("bake", "foundation", "catalog.list", "catalog.export"):
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(name + " "))
        assert len(line.split()) > 1


@pytest.mark.parametrize(("args", "message"), [
    (("bake", "nope"), "unknown image 'nope'"),
    (("bake", "app", "--target", "gcp"), "unknown target 'gcp'"),
    (("catalog.list",), "no catalog at"),
    (("catalog.export",), "no catalog at"),
    (("catalog.reconcile",), "no catalog at"),
])
def test_bad_input_is_one_line(root, tmp_path, args, message):
    done = run(root, *args, home=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kiln: error: ") and message in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_corrupt_catalog_is_reported_and_left_alone(root, tmp_path):
    (tmp_path / "catalog.db").write_bytes(b"garbage" * 1000)
    before = (tmp_path / "catalog.db").read_bytes()
    done = run(root, "catalog.list", home=tmp_path)
    assert done.returncode == 1 and "unreadable catalog" in done.stderr
    assert (tmp_path / "catalog.db").read_bytes() == before


def test_export_and_list_of_a_real_catalog(root, tmp_path):
    from pipeline.catalog import Artifact, Catalog

    with Catalog.open(tmp_path / "catalog.db") as cat:
        v = cat.begin_bake(name="base", parent=None, fingerprint="sha256:f", git_commit="c", git_dirty=False,
                           run_id="r", log_dir="/l")
        cat.add_artifact("base", v, Artifact(target="local", id="sha256:abc", path="/s/base.qcow2"))
        cat.set_status("base", v, "verified")
    doc = json.loads(run(root, "catalog.export", home=tmp_path).stdout)
    assert doc["channels"] == {"base": {"latest": v}}
    listing = run(root, "catalog.list", home=tmp_path).stdout.splitlines()
    assert listing[0].split()[:3] == ["IMAGE", "VERSION", "STATUS"]
    assert listing[1].split()[:3] == ["base", v, "verified"]


@pytest.fixture
def seeded(tmp_path):
    from pipeline.catalog import Artifact, Catalog

    with Catalog.open(tmp_path / "catalog.db") as cat:
        v = cat.begin_bake(name="base", parent=None, fingerprint="sha256:" + "0" * 64, git_commit="c",
                           git_dirty=False, run_id="r", log_dir="/l")
        cat.add_artifact("base", v, Artifact(target="local", id="sha256:abc", path="/s/base.qcow2"))
        cat.set_status("base", v, "verified")
        f = cat.begin_bake(name="base", parent=None, fingerprint="sha256:" + "1" * 64, git_commit="c",
                           git_dirty=False, run_id="r", log_dir="/l")
        cat.set_status("base", f, "failed")
    return tmp_path, v, f


@pytest.mark.parametrize(("args", "message"), [
    (("promote", "base", "--channel", "prod"), "'base' names no version"),
    (("promote", "base@2020.0101.000000", "--channel", "prod"), "no such image version base@2020.0101.000000"),
    (("promote", "base@{failed}", "--channel", "prod"), "it is failed"),
    (("promote", "base@{good}", "--channel", "Prod!"), "invalid channel name 'Prod!'"),
    (("promote", "base@{good}", "--channel", "latest"), "latest channel moves by itself"),
    (("promote", "Base@1", "--channel", "prod"), "invalid image reference 'Base@1'"),
    (("rollback", "base", "--channel", "prod"), "channel prod of base has no assignment"),
    (("revoke", "base@{good}"), "a revoke needs a reason"),
    (("restore", "base@{good}"), "is not revoked"),
    (("prune", "--keep", "0"), "invalid --keep value '0'"),
    (("prune", "--keep", "many"), "invalid --keep value 'many'"),
    (("catalog.resolve", "base", "--channel", "prod"), "base has no version on channel 'prod'"),
    (("catalog.resolve", "nope"), "no image called 'nope'"),
    (("catalog.diff", "base@x", "base@{good}"), "invalid version 'x'"),
    (("plan", "nope"), "unknown image 'nope'"),
    (("bake", "app", "--all"), "give an IMAGE or --all, not both"),
])
def test_bad_catalog_input_leaves_the_catalog_untouched(root, seeded, args, message):
    home, good, failed = seeded
    before = (home / "catalog.db").read_bytes()
    done = run(root, *(a.format(good=good, failed=failed) for a in args), home=home)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kiln: error: ") and message in lines[0], done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert (home / "catalog.db").read_bytes() == before


def test_resolve_prints_only_the_id(root, seeded):
    home, good, _ = seeded
    assert run(root, "promote", f"base@{good}", "--channel", "prod", home=home).returncode == 0
    done = run(root, "catalog.resolve", "base", "--channel", "prod", home=home)
    assert done.returncode == 0 and done.stdout == "sha256:abc\n"


def test_start_up_does_not_load_what_only_one_task_needs(root):
    # A no-op bake is a start-up and a plan: the SBOM libraries and the Packages parser (~0.1 s to import)
    # are loaded by the tasks that use them, not by every command.
    probe = "import sys, tasks; print(sorted({m.split('.')[0] for m in sys.modules} & {'cyclonedx', 'spdx_tools'})," \
            " 'debian.deb822' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[] False", done.stdout + done.stderr


def test_reconcile_locally_has_nothing_to_put_right_and_changes_nothing(root, seeded):
    home, _, _ = seeded
    before = (home / "catalog.db").read_bytes()
    done = run(root, "catalog.reconcile", "--dry-run", home=home)
    assert done.returncode == 0 and done.stdout == "local: every channel is where the catalog says\n", done.stderr
    assert (home / "catalog.db").read_bytes() == before
