"""The local target's upkeep: what is in use, deleting stored images, scratch folders of killed runs.

An image is in use while any process holds it open (QEMU, the chroot builder's
``qemu-storage-daemon``, ``qemu-img``: seen through ``/proc/*/fd``) or a running
QEMU has it anywhere in its disk's backing chain (``invoke up``, a
verification, a bake on top of it). A run killed
outright (SIGKILL, power loss) leaves its scratch folder in ``$KILN_HOME/runs``,
named after the run, whose id starts with the time it began; a killed store step
leaves a half-moved ``.partial`` image, a killed foundation build its work folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipeline import machine
from pipeline.catalog import Catalog
from pipeline.targets.base import Leftover
from pipeline.targets.local import chroot, foundation
from pipeline.upkeep.janitor import run_started
from pipeline.upkeep.prune import Decision


def tmp_places() -> list[Path]:
    """Where runs keep short temporary folders: /tmp, and $TMPDIR when it is another short folder."""
    return sorted({Path("/tmp"), machine.tmp_root()})


def _qemu_disks() -> list[str]:
    disks = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or b"qemu-system" not in argv[0]:
            continue
        for arg in argv:
            disks += [part[5:] for part in arg.decode(errors="replace").split(",") if part.startswith("file=")]
    return disks


def _open_images() -> dict[str, str]:
    """Every ``.qcow2`` file some process holds open (QEMU, ``qemu-storage-daemon``, ``qemu-img``, …)."""
    held: dict[str, str] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue  # gone, or not ours to look at
        for fd in fds:
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.endswith(".qcow2"):
                    held.setdefault(target, f"open in {name} (pid {pid})")
    return held


def in_use() -> dict[str, str]:
    """Every image file a process holds open, and every one in the backing chain of a running QEMU's disks."""
    used: dict[str, str] = _open_images()
    for disk in _qemu_disks():
        try:
            out = subprocess.run(["qemu-img", "info", "-U", "--backing-chain", "--output=json", disk],
                                 capture_output=True, text=True, timeout=30, check=True).stdout
        except (subprocess.SubprocessError, OSError):
            continue
        for layer in json.loads(out):
            for key in ("filename", "full-backing-filename"):
                if layer.get(key):
                    used[str(layer[key])] = "by a running VM"
    return used


def delete(catalog: Catalog, doomed: Sequence[Decision], store: Path) -> list[str]:
    """Delete the stored files of the versions that go, and their content-addressed folder once it is empty
    (two versions with identical bytes share one); mark them deleted."""
    for d in doomed:
        for art in d.artifacts:
            if art.target != "local" or not art.path:
                continue
            path = Path(art.path)
            path.unlink(missing_ok=True)
            if path.parent.parent == store and path.parent.name.startswith("sha256-"):
                with contextlib.suppress(OSError):  # not empty: another version's file is in it
                    path.parent.rmdir()
        catalog.mark_deleted(d.name, d.version, "pruned")
    return []


def leftovers(runs: Path, older_than: timedelta, now: datetime | None = None,
              tmp: Sequence[Path] | None = None) -> list[Leftover]:
    """Scratch folders of local runs that started at least ``older_than`` ago: in ``$KILN_HOME/runs``, and
    the short temporary folders (Packer's, SSH control sockets) in ``tmp`` named ``kiln-…`` after their run."""
    now = now or datetime.now(UTC)
    found = []
    for place, prefix in [(runs, ""), *((t, "kiln-") for t in (tmp_places() if tmp is None else tmp))]:
        for folder in sorted(place.iterdir()) if place.is_dir() else []:
            started = run_started(folder.name)
            if folder.name.startswith(prefix) and started is not None and now - started >= older_than:
                still = chroot.held(folder)
                what = [f"{len(x)} {kind}" for x, kind in zip(still, ("mount(s)", "loop device(s)", "process(es)"),
                                                               strict=True) if x]
                text = f"{folder}" + (f" ({', '.join(what)})" if what else "")
                found.append(Leftover("", "scratch", str(folder), folder.name, text))
    return found


PARTIAL = re.compile(r"^\.[a-z][a-z0-9-]*-\d{4}\.\d{4}\.\d{6}(\.\d+)?\.qcow2\.partial$")


def abandoned_files(store: Path, cache: Path, older_than: timedelta, now: float | None = None) -> list[Leftover]:
    """What a store or foundation build killed outright left: a half-moved ``.IMAGE-VERSION.qcow2.partial``
    in the store (a store step takes seconds: one older than ``older_than`` is dead), and a foundation
    work folder while no foundation build holds the cache's lock."""
    now = time.time() if now is None else now
    found = []
    for path in sorted(store.glob("sha256-*/.*.partial")) if store.is_dir() else []:
        if PARTIAL.match(path.name) and now - path.stat().st_mtime >= older_than.total_seconds():
            found.append(Leftover("", "partial", str(path), "", f"{path} (a store step that never finished)"))
    for folder in foundation.abandoned_builds(cache):
        if now - folder.stat().st_mtime >= older_than.total_seconds():
            found.append(Leftover("", "scratch", str(folder), "", f"{folder} (a foundation build that never finished)"))
    return found


def clean(found: Sequence[Leftover]) -> list[str]:
    """Remove them: first release what a killed chroot build still holds in them (mounts, loop devices, its
    export's daemon), so nothing under them is removed through a mount."""
    lines = []
    for item in found:
        if item.kind == "partial":
            Path(item.id).unlink(missing_ok=True)
            lines.append(f"removed {item.describe()}")
            continue
        chroot.release(Path(item.id))
        removed = machine.remove_tree(Path(item.id))
        lines.append(f"removed {item.describe()}" if removed else f"FAILED to remove {item.describe()}: still mounted")
    return lines
