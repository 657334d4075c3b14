"""A qcow2 layer mounted read-write on this machine, ready to provision in a chroot — without nbd.

``qemu-storage-daemon`` exports the qcow2 (with its backing chain) as a raw file
over FUSE; a loop device at the partition's offset makes it mountable; then
``/proc``, ``/sys`` and ``/dev`` are bound in, this machine's ``resolv.conf`` is
bound over the image's (which points at QEMU's DNS), and ``policy-rc.d`` keeps
packages from starting services. Each of these is a context manager, so a
failure or an interrupt in any phase undoes exactly what was done, in reverse.
Everything carries the run's scratch path (and so its run id): the janitor
finds what a killed build left by it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from pipeline import machine, proc
from pipeline.errors import KilnError

PARTITION_OFFSET = 1024 * 1024  # the foundation's one partition starts at sector 2048
POLICY_RC_D = "usr/sbin/policy-rc.d"
BINDS = ("proc", "sys", "dev")


def daemon_argv(disk: Path, raw: Path) -> tuple[str, ...]:
    """qemu-storage-daemon exporting ``disk`` read-write as the raw file ``raw`` over FUSE."""
    return ("qemu-storage-daemon",
            "--blockdev", f"driver=file,node-name=file,filename={disk}",
            "--blockdev", "driver=qcow2,node-name=disk,file=file",
            "--export", f"type=fuse,id=export,node-name=disk,mountpoint={raw},writable=on")


@contextlib.contextmanager
def exported(disk: Path, work: Path, log: Path) -> Iterator[Path]:
    """The qcow2 as a raw file (with its backing chain read through); the daemon stops on exit."""
    raw = work / "raw"
    raw.touch()
    with proc.background(proc.Invocation(daemon_argv(disk, raw)), log) as daemon:
        deadline = time.monotonic() + 30
        while str(raw) not in machine.mount_points():
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise KilnError(f"qemu-storage-daemon could not export {disk.name} (exit {daemon.poll()})", log=log)
            time.sleep(0.02)
        try:
            yield raw
        finally:
            daemon.terminate()  # it unmounts its FUSE export as it stops
            with contextlib.suppress(subprocess.TimeoutExpired):
                daemon.wait(timeout=20)
            if str(raw) in machine.mount_points():
                subprocess.run(["umount", "-l", str(raw)], check=False, capture_output=True)


@contextlib.contextmanager
def looped(raw: Path, log: Path) -> Iterator[str]:
    """A loop device on the partition inside ``raw``; detached on exit."""
    device = proc.capture(["losetup", "--find", "--show", "--offset", str(PARTITION_OFFSET), str(raw)]).strip()
    try:
        yield device
    finally:
        proc.run(proc.Invocation(("losetup", "--detach", device)), log, check=False)


@contextlib.contextmanager
def mounted(device: str, root: Path, log: Path) -> Iterator[Path]:
    """The file system mounted at ``root``; unmounted on exit (lazily, if something still holds it)."""
    root.mkdir(parents=True, exist_ok=True)
    proc.run(proc.Invocation(("mount", device, str(root))), log, what="mount")
    try:
        yield root
    finally:
        unmount(root, log)


def unmount(point: Path, log: Path, *, recursive: bool = False) -> None:
    """Unmount ``point``; if it is busy, detach it lazily rather than leave it."""
    flags = ("-R",) if recursive else ()
    if proc.run(proc.Invocation(("umount", *flags, str(point))), log, check=False).returncode != 0:
        proc.run(proc.Invocation(("umount", "-l", *flags, str(point))), log, check=False)


@contextlib.contextmanager
def provisionable(root: Path, log: Path) -> Iterator[Path]:
    """``/proc``, ``/sys``, ``/dev`` and this machine's DNS inside ``root``; services kept from starting."""
    bound: list[Path] = []
    policy = root / POLICY_RC_D
    try:
        for name in BINDS:
            target = root / name
            argv = ("mount", "-t", "proc", "proc", str(target)) if name == "proc" else \
                ("mount", "--rbind", f"/{name}", str(target))
            proc.run(proc.Invocation(argv), log, what=f"mount /{name}")
            bound.append(target)
            if name != "proc":  # unmounting inside must never reach this machine's own /sys or /dev
                proc.run(proc.Invocation(("mount", "--make-rslave", str(target))), log, what="mount --make-rslave")
        resolv = root / "etc/resolv.conf"
        if resolv.is_symlink() or not resolv.exists():
            raise KilnError(f"{resolv} is not a plain file: cannot give the chroot this machine's DNS")
        proc.run(proc.Invocation(("mount", "--bind", "/etc/resolv.conf", str(resolv))), log, what="bind resolv.conf")
        bound.append(resolv)
        policy.write_text("#!/bin/sh\n# Kiln: no service starts while an image is provisioned in a chroot.\nexit 101\n")
        policy.chmod(0o755)
        yield root
    finally:
        try:
            policy.unlink(missing_ok=True)
            kept = None
        except OSError as exc:  # a file system gone read-only (full disk): still unmount everything
            kept = exc
        for point in reversed(bound):
            unmount(point, log, recursive=point.name in ("sys", "dev"))
    if kept is not None:
        raise KilnError(f"could not take {POLICY_RC_D} out of the image again ({kept.strerror})", log=log)


@contextlib.contextmanager
def chroot(disk: Path, work: Path, log: Path) -> Iterator[Path]:
    """``disk`` mounted read-write at ``work/root``, ready for Ansible's chroot connection; all undone on exit."""
    work.mkdir(parents=True, exist_ok=True, mode=0o700)
    with exported(disk, work, log) as raw, looped(raw, log) as device, mounted(device, work / "root", log) as root, \
            provisionable(root, log):
        yield root


def held(folder: Path) -> tuple[list[str], list[str], list[int]]:
    """What a killed build still holds under ``folder``: mount points (deepest first), loop devices, processes."""
    inside = str(folder) + "/"
    points = sorted((m for m in machine.mount_points() if m.startswith(inside)), key=lambda m: m.count("/"),
                    reverse=True)
    loops = []
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        with contextlib.suppress(OSError):
            if backing.read_text().strip().startswith(inside):
                loops.append(f"/dev/{backing.parent.parent.name}")
    daemons = [p.pid for p in machine.processes().values() if inside in p.cmdline + " "]
    return points, loops, daemons


def release(folder: Path, log: Path | None = None) -> list[str]:
    """Undo what a killed build left mounted under ``folder``: chroot mounts, loop devices, the export's daemon."""
    points, loops, daemons = held(folder)
    for point in points:
        if not point.endswith("/raw"):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    for device in loops:
        subprocess.run(["losetup", "--detach", device], check=False, capture_output=True)
    for pid in daemons:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for point in points:
        if point.endswith("/raw"):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    return [f"{len(points)} mount(s)"] * bool(points) + [f"{len(loops)} loop device(s)"] * bool(loops) + \
        [f"{len(daemons)} process(es)"] * bool(daemons)
