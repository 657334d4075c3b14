"""``invoke bench --boot IMAGE``: where a verification boot's time goes, on this machine.

Boots the newest verified version of IMAGE from the local catalog three times as the gate does
(``pipeline.vm.boot``: a fresh overlay, a NoCloud seed, SSH until cloud-init has finished) and prints each
boot's seconds until the VM answered; then, from inside the last one, the guest's own account of its boot:
``systemd-analyze`` (kernel and userspace), its critical chain, the slowest units, and cloud-init's stages
(``cloud-init analyze show``). About two minutes under software emulation; nothing is baked or recorded.
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from pipeline import vm
from pipeline.catalog import Catalog
from pipeline.config import Paths
from pipeline.errors import KilnError

BOOTS = 3
# The gate answers once cloud-init is done; systemd counts the boot finished a moment later.
INSIDE = ("while systemctl is-system-running | grep -q starting; do sleep 0.2; done; systemd-analyze;"
          " systemd-analyze critical-chain --no-pager; systemd-analyze blame --no-pager | head -12; "
          "sudo cloud-init analyze show | grep -E '^(Starting|Finished) stage|Total Time'")


def image_of(paths: Paths, name: str) -> tuple[str, Path]:
    """The newest verified version of ``name`` and its stored file (KilnError naming how to get one)."""
    rec = None
    if paths.catalog.exists():
        with Catalog.open(paths.catalog) as cat:
            rec = cat.latest(name)
    art = rec.artifact("local") if rec is not None else None
    if rec is None or art is None or not art.path or not Path(art.path).exists():
        raise KilnError(f"bench --boot: no verified local image of {name!r} in {paths.catalog}",
                        hint=f"bake it first: invoke bake {name}")
    return rec.ref, Path(art.path)


def report(paths: Paths, name: str, boots: int = BOOTS) -> str:
    """``boots`` boots' times to answer, then the last boot's profile from inside the guest."""
    ref, image = image_of(paths, name)
    seconds, inside = [], ""
    with tempfile.TemporaryDirectory(prefix="kiln-bench-boot-") as tmp:
        for n in range(boots):
            started = time.monotonic()
            with vm.boot(image, Path(tmp) / f"vm{n}", Path(tmp), name=f"bench{n}") as guest:
                seconds.append(time.monotonic() - started)
                if n == boots - 1:
                    inside = subprocess.run(guest.ssh_argv(INSIDE), capture_output=True,
                                            text=True, timeout=300, stdin=subprocess.DEVNULL).stdout
    shown = ", ".join(f"{s:.1f}" for s in seconds)
    return (f"boot of {ref} until it answers (cloud-init done): median {statistics.median(seconds):.1f}s "
            f"({shown})\n\nfrom inside the last boot:\n{inside.rstrip()}")
