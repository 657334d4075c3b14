"""What an end-to-end bake may not leave behind, looked for everywhere rather than by a tool's name.

Every process a bake starts inherits its environment, so one that carries the
test's KILN_HOME (or names it on its command line) is that test's, whatever
program it is: QEMU, Packer, ssh control masters, qemu-storage-daemon, Ansible.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def processes_of(home: Path) -> list[str]:
    """Live processes (zombies aside) that carry ``KILN_HOME=home`` or mention ``home`` on their command line."""
    marker, found = f"KILN_HOME={home}".encode(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
            environ = (entry / "environ").read_bytes().split(b"\0")
            if state != "Z" and (marker in environ or str(home) in line):
                found.append(f"process {entry.name}: {line[:160]}")
    return found


def held_under(home: Path) -> list[str]:
    """Mounts (FUSE exports among them) below ``home`` and loop devices backed by a file below it."""
    found = [f"mount: {line.split()[1]}" for line in Path("/proc/mounts").read_text().splitlines()
             if line.split()[1].startswith(f"{home}/")]
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        with contextlib.suppress(OSError):
            if backing.read_text().startswith(f"{home}/"):
                found.append(f"loop device: {backing.parent.parent.name}")
    return found


def left_behind(home: Path) -> list[str]:
    """Everything of a finished bake under ``home`` that should be gone: processes, mounts, loop devices,
    scratch folders, partial images."""
    runs = home / "runs"
    found = processes_of(home) + held_under(home)
    found += [f"scratch: {p}" for p in sorted(runs.iterdir())] if runs.is_dir() else []
    return found + [f"partial image: {p}" for p in sorted((home / "images").rglob("*.partial"))]
