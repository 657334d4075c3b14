"""``invoke faults`` run once for a test module, in a mount namespace and /tmp of its own."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.conftest import ROOT
from tools.faults.alone import alone


def run_faults(only: str) -> dict:
    """The finished ``invoke faults --only ONLY`` and its rows by case. Alone in its mount namespace, so that
    the other test lane's mounts and /tmp entries do not count as what a case left."""
    folder = Path(tempfile.mkdtemp(prefix="faults-json-", dir="/var/tmp"))  # outside the suite's own /tmp
    out = folder / "faults.json"
    invoke = str(Path(sys.executable).parent / "invoke")
    command = alone([invoke, "faults", "--only", only, "--json", str(out)], scratch=folder / "machine-tmp",
                    needs=[ROOT])
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=4500,
                              stdin=subprocess.DEVNULL)
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
        rows = json.loads(out.read_text()) if out.exists() else []
    finally:
        (folder / "machine-tmp").rmdir()  # only a mount point, in a namespace that is gone with the suite
        shutil.rmtree(folder)
    return {"done": done, "rows": {row["case"]: row for row in rows}}


def check_table(suite: dict, rows: int) -> None:
    """The suite exited 0 and printed its table: the header and ``rows`` rows."""
    done = suite["done"]
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout[done.stdout.index("CASE"):].strip().splitlines()
    assert lines[0].split()[:5] == ["CASE", "PHASE", "ORPHANS", "HALF-PUBLISHED", "RESUMED"]
    assert len(lines) == 1 + rows
