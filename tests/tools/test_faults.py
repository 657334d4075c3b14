"""The fault suite's own judgement: what counts as an orphan, a half-published record, a resume."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pipeline.catalog import Artifact, Catalog
from pipeline.errors import KilnError
from pipeline.machine import Proc
from tools import faults
from tools.faults.chain import kiln_env
from tools.faults.judge import Snapshot, judge_resume, ours


def bake_record(cat: Catalog, home: Path, name: str, *, status: str, report_status: str | None = "verified",
                image: bool = True, parent: tuple[str, str] | None = None) -> str:
    version = cat.begin_bake(name=name, parent=parent, fingerprint="sha256:" + "0" * 64, git_commit="c",
                             git_dirty=False, run_id="r", log_dir="/l")
    path = home / "images" / name / f"{version}.qcow2"
    if image:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"qcow")
    cat.add_artifact(name, version, Artifact(target="local", id=f"sha256:{name}{version}", path=str(path)))
    report = None
    if report_status is not None:
        report = home / "logs" / f"{name}-{version}.json"
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps({"status": report_status}))
    if status != "building":
        cat.set_status(name, version, status, report=str(report) if report else None)
    return version


def test_a_clean_catalog_has_nothing_half_published(tmp_path):
    with Catalog.open(tmp_path / "catalog.db") as cat:
        base = bake_record(cat, tmp_path, "base", status="verified")
        bake_record(cat, tmp_path, "app", status="interrupted", report_status=None, parent=("base", base))
        cat.promote("base", base, "prod")
    assert faults.half_published(tmp_path, None) == []


def test_each_kind_of_half_published_record_is_counted(tmp_path):
    with Catalog.open(tmp_path / "catalog.db") as cat:
        bake_record(cat, tmp_path, "left", status="building")
        bake_record(cat, tmp_path, "noimage", status="verified", image=False)
        bake_record(cat, tmp_path, "badreport", status="verified", report_status="failed")
        stopped = bake_record(cat, tmp_path, "stopped", status="verified")
    (tmp_path / "images" / "stray").mkdir(parents=True)
    (tmp_path / "images" / "stray" / "x.qcow2").write_bytes(b"")
    found = faults.half_published(tmp_path, ("stopped", stopped))
    assert len(found) == 5, found
    assert any("still 'building'" in f for f in found)
    assert any("noimage" in f and "missing" in f for f in found)
    assert any("badreport" in f and "report" in f for f in found)
    assert any(f"stopped@{stopped}" in f and "interrupted" in f for f in found)
    assert any("no record owns" in f for f in found)


def of(folder: Path, found: list[str], *also: Path) -> list[str]:
    """The entries about ``folder`` (or ``also``): the other test lane may add its own /tmp entries meanwhile."""
    return [f for f in found if any(str(p) in f for p in (folder, *also))]


@pytest.fixture
def short():
    """A workspace with a path short enough for the suite's private TMPDIR."""
    folder = Path(tempfile.mkdtemp(prefix="ft-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder)


def test_leftovers_names_scratch_partial_files_and_foundation_work(short):
    home, cache = short / "home", short / "cache"
    before = Snapshot.take()
    assert of(short, faults.leftovers(home, cache, before)) == []
    (home / "runs" / "r1-base").mkdir(parents=True)
    (home / "images" / "base").mkdir(parents=True)
    (home / "images" / "base" / ".v.qcow2.partial").write_bytes(b"")
    (cache / "foundation" / ".build-abc").mkdir(parents=True)
    found = of(short, faults.leftovers(home, cache, before))
    assert [f.split(":")[0] for f in found] == ["scratch", "partial image", "foundation work folder"]


def test_what_a_bake_leaves_in_its_private_tmpdir_or_in_tmp_counts(short):
    home = short / "home"
    env = kiln_env(home, short / "cache")
    assert env["TMPDIR"] == str(short / "tmp")
    before = Snapshot.take()
    made = Path(tempfile.mkdtemp(prefix="kiln-", dir=env["TMPDIR"]))
    assert of(short, faults.leftovers(home, short / "cache", before)) == [f"temporary: {made}"]
    ignored = Path(tempfile.mkdtemp(prefix="packer", dir="/tmp"))  # a tool that ignored TMPDIR
    try:
        found = of(short, faults.leftovers(home, short / "cache", before), ignored)
        assert found == [f"temporary: {made}", f"temporary: {ignored}"]
    finally:
        ignored.rmdir()


def test_a_new_mount_anywhere_is_a_leftover(short):
    before = Snapshot.take()
    point = short / "point"
    point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "none", str(point)], check=True)
    try:
        assert of(short, Snapshot.take().new_since(before)) == [f"mount: {point}"]
    finally:
        subprocess.run(["umount", str(point)], check=True)
    assert of(short, Snapshot.take().new_since(before)) == []


def test_a_loop_device_counts_only_on_a_file_of_the_suite(short):
    suite = (short / "home", short / "cache")
    assert ours(f"loop device: loop3 on {short}/home/runs/r1/raw (deleted)", suite)
    assert ours(f"loop device: loop3 on {short}/cache/foundation/.build-x/raw", suite)
    assert not ours("loop device: loop4 on /root/.kiln/runs/r2/raw", suite)  # another job's
    assert ours("mount: /mnt/anything", suite) and ours("temporary: /tmp/x", suite)


def test_a_workspace_too_long_for_a_socket_path_is_refused(tmp_path):
    with pytest.raises(KilnError, match="too long a path"):
        faults.private_tmp(tmp_path / ("x" * 60) / "home")


WATCH_SCRIPT = """
import json, os, signal, subprocess, time
from tools import faults
faults.become_subreaper()
# A shell that starts a sleeper in its own session (as Kiln starts QEMU), then exits without it.
proc = subprocess.Popen(["sh", "-c", "setsid sleep 120 >/dev/null 2>&1 & echo started; sleep 1"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
watch = faults.Watch(proc)
seen = watch.wait_for(lambda live: any(p.cmdline == "sleep 120" for p in live.values()), 10)
code = watch.finish(30)
left = watch.survivors()
for p in left:
    os.kill(p.pid, signal.SIGKILL)
time.sleep(0.5)
print(json.dumps([seen, code, [p.cmdline for p in left], watch.has_line("started"),
                  [p.cmdline for p in watch.survivors()]]))
"""


def test_the_watch_counts_what_a_finished_process_left_running():
    done = subprocess.run([sys.executable, "-c", WATCH_SCRIPT], cwd=Path(__file__).parents[2], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [True, 0, ["sleep 120"], True, []]


MARKED_SCRIPT = """
import json, os, signal, subprocess, time
from tools import faults
# The sleeper leaves the tree before any poll could see it: only its environment names whose it is.
env = {**os.environ, "TMPDIR": "/tmp/marked-by-this-test"}
proc = subprocess.Popen(["sh", "-c", "setsid sleep 120 >/dev/null 2>&1 &"], env=env, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True)
watch = faults.Watch(proc)
watch.finish(30)
unmarked, left = watch.survivors(), watch.survivors("TMPDIR=/tmp/marked-by-this-test")
for p in left:
    os.kill(p.pid, signal.SIGKILL)
print(json.dumps([[p.cmdline for p in unmarked], [p.cmdline for p in left]]))
"""


def test_the_watch_finds_a_process_it_never_saw_by_the_bakes_environment():
    done = subprocess.run([sys.executable, "-c", MARKED_SCRIPT], cwd=Path(__file__).parents[2], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [[], ["sleep 120"]]


def test_descendants_include_children_of_known_pids():
    table = {pid: Proc(pid, ppid, 0, "S", "") for pid, ppid in ((10, 1), (11, 10), (12, 11), (20, 1), (21, 20))}
    assert faults.descendants(10, table) == {11, 12}
    assert faults.descendants(99, table, {20}) == {21}


def test_version_in_takes_the_last_mention_of_the_image():
    lines = ["[ 1.0s] base@20261127.1: bake on foundation@x", "base@20261127.2: build …", "app@20261127.9: x"]
    assert faults.version_in(lines, "base") == "20261127.2"
    assert faults.version_in(lines, "app") == "20261127.9"
    assert faults.version_in(lines, "other") == ""


class Lines:
    def __init__(self, *lines: str) -> None:
        self.lines = list(lines)

    def has_line(self, *words: str) -> bool:
        return faults.Watch.has_line(self, *words)  # type: ignore[arg-type]


@pytest.mark.parametrize(("phase", "lines", "status", "verdict"), [
    ("verify boot", ["base@1.1: resume — an earlier bake built and stored it"], "verified", "yes"),
    ("specs", ["base@1.1: resume — x", "base@1.1: build …"], "verified", "no: the next bake rebuilt base@1.1"),
    ("publish", ["base@1.2: bake on foundation"], "interrupted", "no: the next bake did not resume base@1.1"),
    ("build", ["base@1.2: build …"], "interrupted", "yes"),
    ("build", ["base@1.2: build …"], "verified", "no: base@1.1 is verified, not interrupted"),
    ("build", ["base@1.1: build …", "base@1.1: build done (2m)"], "interrupted",
     "no: the next bake did not start a new version"),
    ("build", ["app@1.2: build …"], "interrupted", "no: the next bake did not start a new version"),
    ("foundation", ["foundation: building the Debian foundation"], "", "yes"),
    ("foundation", ["base@1.1: build …"], "", "no: the next bake did not rebuild the foundation"),
])
def test_judge_resume(phase, lines, status, verdict):
    case = faults.Case("SIGINT", phase, "base")
    outcome = faults.Outcome(case=case.name, phase=phase, version="1.1")
    assert judge_resume(case, outcome, Lines(*lines), lambda _n, _v: status) == verdict  # type: ignore[arg-type]


def test_every_phase_gets_both_signals():
    pairs = {(c.phase, c.signal) for c in faults.CHAIN}
    assert pairs == {(p, s) for p in ("foundation", "build", "build idempotence", "verify boot", "specs", "publish")
                     for s in ("SIGINT", "SIGTERM")}


def test_table_and_verdicts():
    good = faults.Outcome(case="SIGINT build (base)", phase="build", signal="SIGINT", resumed="yes", seconds=12.34,
                          stop_seconds=1.2, exit_code=130)
    bad = faults.Outcome(case="SIGTERM specs (app)", phase="specs", signal="SIGTERM", orphans=1, resumed="yes")
    text = faults.table([good, bad])
    assert text.splitlines()[0].split() == ["CASE", "PHASE", "ORPHANS", "HALF-PUBLISHED", "RESUMED", "OK", "SECONDS",
                                            "STOP", "S", "EXIT", "VERDICT"]
    assert "12.3" in text and text.splitlines()[1].endswith("ok") and text.splitlines()[2].endswith("FAIL")
    assert not faults.Outcome(case="x", phase="y", resumed="no: rebuilt").ok


def test_sqlite_writers_are_all_counted(tmp_path):
    outcome = faults.sqlite_writers(tmp_path, writers=6)
    assert outcome.ok and outcome.half_published == 0, outcome
    assert outcome.details == ["counted 6 records, 6 writers, 6 promotions of 6 each"]


def test_invoke_faults_rejects_an_unknown_part(tmp_path):
    invoke = str(Path(sys.executable).parent / "invoke")
    done = subprocess.run([invoke, "faults", "--only", "everything"], cwd=Path(__file__).parents[2],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "kiln: error: --only 'everything': everything is not a part of the suite — use one or more of all, "
        "interrupts, aws, writers, world, separated by commas"]


def test_only_names_parts_separated_by_commas_and_world_alone():
    assert faults.parts_of("interrupts, writers") == {"interrupts", "writers"}
    assert faults.parts_of("all") == faults.parts_of("aws,all") == {"interrupts", "aws", "writers"}
    assert faults.parts_of("world") == {"world"}
    with pytest.raises(KilnError, match="world runs on its own"):
        faults.parts_of("world,aws")
    with pytest.raises(KilnError, match="no part"):
        faults.parts_of(" , ")


@pytest.mark.parametrize(("phase", "line"), [("build", "base@1: build: mounted, converging"),
                                             ("build idempotence", "base@1: build: converged, checking idempotence")])
def test_the_chroot_build_phases_are_recognised_from_the_bakes_own_lines(phase, line):
    watch = faults.Watch(subprocess.Popen(["true"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    watch.finish(10)
    ready = faults.phase_reached(faults.Case("SIGINT", phase, "base"), watch)
    playbook = {1: Proc(1, 0, 0, "S", "python ansible-playbook base.yml")}
    assert not ready(playbook)
    watch.lines.append(line)
    assert ready(playbook) and not ready({})
