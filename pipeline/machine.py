"""This machine as a bake sees it: its processes, its mount points, and scratch folders that must go.

A bake starts tools that may leave their process group (Ansible's
ansible-playbook under ansible-runner), mounts this machine's ``/dev`` and
``/sys`` inside a scratch folder (the chroot builder), and keeps Unix sockets in
short temporary folders: these are the functions that find and end all of it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SHORT_ROOT = 32  # bytes: leaves room for kiln-<run id>-<random>/<tool's socket> under 108


@dataclass(frozen=True)
class Proc:
    """A process as /proc shows it; (pid, start) tells it apart from a later one with the same pid."""

    pid: int
    ppid: int
    start: int
    state: str
    cmdline: str


def processes() -> dict[int, Proc]:
    """Every process on the machine, read from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        rest = stat.rsplit(")", 1)[1].split()
        found[int(entry.name)] = Proc(int(entry.name), int(rest[1]), int(rest[19]), rest[0], cmdline)
    return found


def kill_stray(marker: str) -> list[int]:
    """SIGKILL every process (and its group) whose command line mentions ``marker``; return their pids.

    For tools that leave the process group Kiln started them in: ansible-core
    2.19's ansible-playbook, when run on a pseudo-terminal as ansible-runner
    does, continues in a session of its own, which killing the group misses.
    Kiln's own process group is never signalled as a whole.
    """
    me, own_group = os.getpid(), os.getpgrp()
    found = []
    for pid, info in processes().items():
        if pid == me or marker not in info.cmdline:
            continue
        try:
            group = os.getpgid(pid)
            if group != own_group:
                os.killpg(group, signal.SIGKILL)
            os.kill(pid, signal.SIGKILL)
            found.append(pid)
        except OSError:
            continue
    return found


def tmp_root() -> Path:
    """Where short-lived folders go: ``$TMPDIR`` when its path is short enough for the Unix sockets tools keep
    there (108 bytes at most, with Kiln's run-named folder and the tool's own name under it), else /tmp."""
    chosen = Path(tempfile.gettempdir())
    return chosen if len(str(chosen)) <= SHORT_ROOT else Path("/tmp")


@contextlib.contextmanager
def short_tmpdir(prefix: str = "kiln-") -> Iterator[Path]:
    """A private temporary folder with a short path, removed on exit.

    Tools put Unix sockets in their TMPDIR (Packer's plugins, SSH control
    masters), and a socket path may not exceed 108 bytes.
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=tmp_root()))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def mount_points() -> list[str]:
    """Every mount point on this machine now."""
    return [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]


def remove_tree(folder: Path) -> bool:
    """Remove a scratch folder, never through a mount point.

    A chroot build mounts this machine's ``/dev`` and ``/sys`` inside its scratch
    folder: whatever is still mounted below ``folder`` is detached first (lazily),
    and if anything stays mounted the folder is left for the janitor. True when removed.
    """
    inside = str(folder) + "/"
    for point in sorted((m for m in mount_points() if m.startswith(inside)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True, stdin=subprocess.DEVNULL)
    if any(m.startswith(inside) or m == str(folder) for m in mount_points()):
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return True
