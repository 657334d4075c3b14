"""The fault suite beside other work on the machine: a mount namespace and a /tmp of its own.

The suite compares this machine's mounts and /tmp entries before and after
every case (``judge.Snapshot``), so another job's bake in the same minutes
would count as a leftover. In a private mount namespace the suite sees only
the mounts its own bakes make, and a fresh tmpfs on /tmp only their /tmp
entries. Loop devices are not namespaced: ``judge.leftovers`` counts one when
its file is the suite's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

# $1: where the machine's /tmp stays reachable; then the folders of /tmp the suite reads (Kiln's checkout, if
# it is there), relative to /tmp; then --; then the command.
SCRIPT = """set -e
real="$1"; shift
mount --bind /tmp "$real"
mount -t tmpfs -o mode=1777 kiln-faults-tmp /tmp
while [ "$1" != "--" ]; do mkdir -p "/tmp/$1"; mount --bind "$real/$1" "/tmp/$1"; shift; done
shift
exec "$@"
"""


def alone(command: Sequence[str], *, scratch: Path, needs: Sequence[Path]) -> list[str]:
    """``command`` in a private mount namespace with an empty /tmp, except for the folders of ``needs`` that
    live in /tmp (bound back in); ``scratch`` is an empty folder outside /tmp where the real /tmp is bound."""
    scratch.mkdir(parents=True, exist_ok=True)
    keep = sorted({p.resolve().relative_to("/tmp").parts[0] for p in needs if p.resolve().is_relative_to("/tmp")})
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", SCRIPT, "sh", str(scratch),
            *keep, "--", *command]
