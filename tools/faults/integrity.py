"""One flipped byte in the middle of a stored parent: nothing may be built on it, booted, or published.

Run at the end of the chain, when base and app are verified: base's stored file
gets one byte inverted halfway through, then a forced bake of app (which builds
on base), a promote of base, ``invoke up base`` and ``invoke catalog.check``
must each refuse in one line, with nothing recorded, moved or left running.
With the byte put back, ``catalog.check`` passes again.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tools.faults.cases import Outcome
from tools.faults.judge import Snapshot, leftovers

CASE = "flipped byte in a parent"


def invoke(env: dict[str, str], root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``invoke ARGS`` in the chain's KILN_HOME."""
    return subprocess.run([str(Path(sys.executable).parent / "invoke"), *args], cwd=root, env=env, text=True,
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=1800)


def flip(path: Path, offset: int) -> None:
    """Invert one byte of ``path`` in place (the stored file is read-only; root writes it anyway)."""
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))


def flipped_parent(home: Path, cache: Path, env: dict[str, str], root: Path,
                   say: Callable[[str], None]) -> Outcome:
    """The case: refusals while base's file is damaged, a clean check once it is repaired."""
    from pipeline.catalog import Catalog

    outcome = Outcome(case=CASE, phase="integrity")
    before, started = Snapshot.take(), time.monotonic()
    with Catalog.open(home / "catalog.db", create=False) as cat:
        base = cat.latest("base")
        apps = len(cat.versions("app"))
    if base is None or not base.artifacts or not base.artifacts[0].path:
        outcome.problems.append("no verified base to damage: the chain did not finish")
        return outcome
    path = Path(base.artifacts[0].path)
    middle = path.stat().st_size // 2
    say(f"{CASE}: inverting byte {middle} of {path}")
    flip(path, middle)
    try:
        bake = invoke(env, root, "bake", "app", "--force")
        outcome.exit_code, outcome.last_line = bake.returncode, (bake.stderr.strip().splitlines() or [""])[-1]
        refusals = {"bake app --force": bake, "promote base@latest": invoke(env, root, "promote", "base@latest",
                                                                             "--channel", "prod"),
                    "up base": invoke(env, root, "up", "base"), "catalog.check": invoke(env, root, "catalog.check")}
        outcome.details += [f"{what}: exit {done.returncode}: {(done.stderr.strip().splitlines() or [''])[-1]}"
                            for what, done in refusals.items()]
        outcome.details.append("catalog.check printed: " + " | ".join(refusals["catalog.check"].stdout.splitlines()))
    finally:
        flip(path, middle)
        invoke(env, root, "down", "base")  # in case up was not refused
    repaired = invoke(env, root, "catalog.check")
    outcome.details.append(f"catalog.check once repaired: exit {repaired.returncode}")
    with Catalog.open(home / "catalog.db", create=False) as cat:
        if len(cat.versions("app")) != apps:
            outcome.problems.append("a version of app was recorded although its parent was damaged")
        if cat.channel("base", "prod") is not None:
            outcome.problems.append("base was promoted to prod although its file was damaged")
    left = leftovers(home, cache, before)
    outcome.orphans, outcome.seconds = len(left), time.monotonic() - started
    outcome.details += left
    return outcome
