"""This machine's image locks: one bake of an image at a time, and which runs are alive by them.

A lock is a file per image in ``KILN_HOME/locks`` held with ``flock`` for as
long as the image's bake runs; the holder writes its run id into it. The
kernel drops the lock when the holder dies however it dies, so a held lock is
proof of a live run — the janitor reads them (through ``/proc/locks``, without
taking any lock itself, so it never makes a bake wait) and never touches what
a live run made, whatever its run id says about its age. The other way round,
a lock that names a run nobody holds proves that run dead on this machine, so
a lease it left unreleased (SIGKILL) need not be waited out here.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from pipeline.bake.lease import LeaseHeld
from pipeline.progress import Reporter


@contextlib.contextmanager
def image_lock(folder: Path, name: str, run_id: str, reporter: Reporter, *, wait: bool = True) -> Iterator[None]:
    """One bake of ``name`` at a time on this machine; a second one waits (told not to wait, it fails as for
    another machine's lease: exit 75). The holder's run id is in the file while it holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.lock", "a+") as fh:  # (never truncated before it is held: a holder's id stays)
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise LeaseHeld(f"{name}: another bake of {name} is running on this machine",
                                hint="run again later, or without --no-wait to wait for it") from None
            reporter.line(f"{name}: another bake of {name} is running on this machine; waiting for it")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(run_id + "\n")
            fh.flush()
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def held_inodes(proc_locks: Path = Path("/proc/locks")) -> set[int]:
    """Inodes of every file some process holds an ``flock`` on (``/proc/locks``)."""
    held = set()
    with contextlib.suppress(OSError):
        for line in proc_locks.read_text().splitlines():
            fields = line.split()
            if "FLOCK" in fields and len(fields) > 5:
                with contextlib.suppress(ValueError, IndexError):
                    held.add(int(fields[fields.index("FLOCK") + 4].rsplit(":", 1)[1]))
    return held


def runs(folder: Path, proc_locks: Path = Path("/proc/locks")) -> dict[str, bool]:
    """Every run id named in an image lock in ``folder``, and whether some lock naming it is held right now.

    A run named only in locks nobody holds has died (or moved on between two images, holding no lease then
    either): the kernel released its locks, and the file keeps its id until the next holder writes its own.
    """
    held, seen = held_inodes(proc_locks), {}
    for lock in sorted(folder.glob("*.lock")) if folder.is_dir() else ():
        with contextlib.suppress(OSError):
            if run_id := lock.read_text().strip():
                seen[run_id] = seen.get(run_id, False) or os.stat(lock).st_ino in held
    return seen


def live_runs(folder: Path, proc_locks: Path = Path("/proc/locks")) -> set[str]:
    """Run ids of the bakes holding an image lock in ``folder`` right now."""
    return {run_id for run_id, held in runs(folder, proc_locks).items() if held}
