"""A qcow2 layer mounted for the chroot builder: everything it mounts goes away, on success, error or SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline import machine
from pipeline.targets.local import chroot, upkeep

pytestmark = pytest.mark.root
RUN = "20261101T020000Z-0c4a11"


def small_disk(folder: Path) -> Path:
    """A qcow2 shaped like the foundation (one ext4 partition at 1 MiB) with the folders a chroot needs."""
    root = folder / "tree"
    for name in ("proc", "sys", "dev", "etc", "usr/sbin", "tmp"):
        (root / name).mkdir(parents=True)
    (root / "etc/resolv.conf").write_text("nameserver 10.0.2.3\n")
    raw = folder / "disk.raw"
    subprocess.run(["truncate", "-s", "64M", str(raw)], check=True)
    subprocess.run(["sfdisk", "-q", str(raw)], input=b"label: dos\nstart=2048, type=83\n", check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "offset=1048576", "-d", str(root), str(raw), "63M"], check=True)
    disk = folder / "base.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(disk)], check=True)
    return disk


def held_anywhere(folder: Path) -> tuple[list[str], list[str], list[int]]:
    return chroot.held(folder)


def test_daemon_argv_exports_the_layer_read_write(tmp_path):
    argv = chroot.daemon_argv(tmp_path / "child.qcow2", tmp_path / "raw")
    assert argv[0] == "qemu-storage-daemon"
    assert f"driver=file,node-name=file,filename={tmp_path / 'child.qcow2'}" in argv
    assert f"type=fuse,id=export,node-name=disk,mountpoint={tmp_path / 'raw'},writable=on" in argv


def test_a_mounted_layer_keeps_what_was_written_and_nothing_stays_mounted(tmp_path):
    base = small_disk(tmp_path)
    child = tmp_path / "child.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(child)], check=True)
    work = tmp_path / f"{RUN}-base" / "chroot"
    with chroot.chroot(child, work, tmp_path / "log") as root:
        assert (root / "etc/resolv.conf").read_text() == Path("/etc/resolv.conf").read_text()
        assert (root / chroot.POLICY_RC_D).read_text().endswith("exit 101\n")
        assert (root / "proc/self").exists() and (root / "dev/null").exists()
        (root / "etc/written-in-the-chroot").write_text("kept\n")
    assert held_anywhere(work.parent) == ([], [], [])
    with pytest.raises(RuntimeError, match="boom"), chroot.chroot(child, work, tmp_path / "log") as root:
        assert (root / "etc/written-in-the-chroot").read_text() == "kept\n"  # the child holds the change
        assert (root / "etc/resolv.conf").read_text() == Path("/etc/resolv.conf").read_text()
        raise RuntimeError("boom")
    assert held_anywhere(work.parent) == ([], [], [])
    # Mounted plainly afterwards: the image's own resolv.conf is as it was, and no policy-rc.d is left in it.
    log = tmp_path / "log"
    with chroot.exported(child, work, log) as raw, chroot.looped(raw, log) as device, \
            chroot.mounted(device, work / "root", log) as root:
        assert (root / "etc/resolv.conf").read_text() == "nameserver 10.0.2.3\n"
        assert not (root / chroot.POLICY_RC_D).exists()
    assert held_anywhere(work.parent) == ([], [], [])


HOLD = """
import sys, time
from pathlib import Path
from pipeline.targets.local import chroot
with chroot.chroot(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])):
    print("mounted", flush=True)
    time.sleep(600)
"""


def test_the_janitor_releases_what_a_killed_chroot_build_held(tmp_path):
    base = small_disk(tmp_path)
    runs = tmp_path / "runs"
    scratch = runs / f"{RUN}-base"
    scratch.mkdir(parents=True)
    child = scratch / "child.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(child)], check=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(child), str(scratch / "chroot"), str(tmp_path / "log")],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[3])
    assert holder.stdout.readline().strip() == "mounted"
    os.kill(holder.pid, signal.SIGKILL)  # no teardown runs
    holder.wait()
    time.sleep(0.5)
    points, loops, daemons = held_anywhere(scratch)
    assert len(points) >= 5 and loops and daemons, (points, loops, daemons)
    [found] = upkeep.leftovers(runs, timedelta(0), tmp=())
    assert "mount(s)" in found.describe() and "loop device(s)" in found.describe()
    assert upkeep.clean([found]) == [f"removed {found.describe()}"]
    assert held_anywhere(scratch) == ([], [], []) and not scratch.exists()
    assert Path("/dev/null").exists() and Path("/sys/kernel").exists()  # this machine's own are untouched


def test_a_scratch_folder_is_never_removed_through_a_mount(tmp_path):
    inside = tmp_path / "scratch" / "dev"
    inside.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(inside)], check=True)
    (inside / "precious").write_text("x")
    assert machine.remove_tree(tmp_path / "scratch") is True  # detached first, then removed
    assert not (tmp_path / "scratch").exists()
