"""The fault suite's interrupt and concurrency cases, run for real and summed up in one table.

``invoke faults`` bakes ``app`` from nothing in a fresh KILN_HOME and KILN_CACHE
and interrupts it twelve times: SIGINT (Ctrl-C) and SIGTERM (Jenkins' abort) in
each phase — foundation, the chroot build and its idempotence run, verification
boot, specs, publishing. Each interrupted run is the starting point of the
next, so the runs form one chain that ends in two bakes of ``app`` started at
once, which must finish; then bakes that run together (``--jobs 2`` stopped by
Ctrl-C, a lease holder killed outright: ``together.py``). After every stop it looks for what a careless bake
leaves behind: processes it started that are still alive, anything in the
private TMPDIR it gets, new mounts, FUSE exports, loop devices and /tmp entries
on the machine, and catalog records that claim more than is true. The aws
group does the same to the AMI path on the EC2 twin. It then runs fifty
concurrent catalog writers on SQLite and on the S3 store (against a moto
server on 127.0.0.1) and counts their updates. ``--only world`` runs the world
group instead (``world``): lost replies, server errors, throttling and damaged
documents injected between Kiln's command line and AWS by a proxy.

Publishing is one catalog write, too short to hit with a signal by timing, so
the suite sets ``KILN_PAUSE_AT=record:<image>``, which the command line turns
into a step hook that holds the bake just before that step (``pipeline.cli``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from pipeline.errors import KilnError
from tools.faults.aws import run_aws
from tools.faults.cases import CHAIN, EXIT_CODES, WRITERS, Case, Outcome, table, write_json
from tools.faults.chain import run_chain
from tools.faults.judge import half_published, leftovers, private_tmp, version_in
from tools.faults.watch import Watch, become_subreaper, descendants, phase_reached
from tools.faults.writers import s3_writers, sqlite_writers

PARTS = ("all", "interrupts", "aws", "writers", "world")
__all__ = ["CHAIN", "EXIT_CODES", "WRITERS", "Case", "Outcome", "Watch", "become_subreaper", "descendants",
           "half_published", "leftovers", "run", "s3_writers", "sqlite_writers", "table", "private_tmp", "version_in",
           "main", "parts_of", "phase_reached", "workspace", "write_json"]


def run(workdir: Path, *, only: str = "all", say: Callable[[str], None] = print) -> list[Outcome]:
    """Every case of the parts ``only`` names (``PARTS``, comma-separated), in a fresh ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    with own_tmp(workdir / "suite-tmp"):
        return run_parts(workdir, parts_of(only), say)


def parts_of(only: str) -> set[str]:
    """The parts ``--only`` names: ``all`` is interrupts, aws and writers; world runs only on its own."""
    parts = {part.strip() for part in only.split(",") if part.strip()}
    unknown = sorted(parts - set(PARTS))
    if unknown or not parts:
        raise KilnError(f"--only {only!r}: {', '.join(unknown) or 'no part'} is not a part of the suite",
                        hint=f"use one or more of {', '.join(PARTS)}, separated by commas")
    if "world" in parts and len(parts) > 1:
        raise KilnError(f"--only {only!r}: world runs on its own", hint="run --only world separately")
    return {"interrupts", "aws", "writers"} if "all" in parts else parts


@contextlib.contextmanager
def own_tmp(folder: Path) -> Iterator[None]:
    """The suite's own temporary files (the EC2 twin's, the emulator's) go to ``folder``, not /tmp, where each
    case looks for what a bake left."""
    import tempfile

    folder.mkdir(parents=True, exist_ok=True)
    saved = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir, os.environ["TMPDIR"] = str(folder), str(folder)
    try:
        yield
    finally:
        tempfile.tempdir = saved[0]
        if saved[1] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved[1]


def run_parts(workdir: Path, parts: set[str], say: Callable[[str], None]) -> list[Outcome]:
    """The ``parts``, one after the other."""
    outcomes: list[Outcome] = []
    if "interrupts" in parts:
        outcomes += run_chain(workdir, say)
    if "aws" in parts:
        say("the AMI path on the EC2 twin: stops in the build and the verification, SIGKILL, failing gates")
        outcomes += run_aws(workdir, say)
    if "writers" in parts:
        say(f"{WRITERS} concurrent writers on SQLite")
        outcomes.append(sqlite_writers(workdir))
        say(f"{WRITERS} concurrent writers on the S3 store (moto on 127.0.0.1)")
        outcomes.append(s3_writers())
    return outcomes


@contextlib.contextmanager
def workspace(keep: Path | None) -> Iterator[Path]:
    """Where the chain keeps its home and cache: ``keep`` (left in place) or a temporary folder."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="faults-", dir=os.environ.get("KILN_FAULTS_TMP", "/var/tmp")))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(*, only: str = "all", json_path: Path | None = None, keep: Path | None = None) -> None:
    """``invoke faults``: run the cases, print the table; KilnError when any case failed."""
    parts = parts_of(only)

    def say(line: str) -> None:
        print(line, flush=True)

    if parts == {"world"}:
        return world_main(keep, json_path, say)
    with workspace(keep) as folder:
        outcomes = run(folder, only=only, say=say)
    if json_path is not None:
        write_json(outcomes, json_path)
    finish(table(outcomes), [f"{o.case}: {'; '.join(o.problems + o.details[:5]) or o.resumed}"
                             for o in outcomes if not o.ok], len(outcomes), "fault case(s)")


def world_main(keep: Path | None, json_path: Path | None, say: Callable[[str], None]) -> None:
    """``invoke faults --only world``: failures of the world injected between Kiln and AWS; one table."""
    import json
    from dataclasses import asdict

    from tools.faults.world import run_world
    from tools.faults.world import table as world_table

    with workspace(keep) as folder, own_tmp(folder / "suite-tmp"):
        rows = run_world(folder, say)
    if json_path is not None:
        json_path.write_text(json.dumps([{**asdict(r), "ok": r.ok} for r in rows], indent=2) + "\n")
    finish(world_table(rows), [f"{r.case}: {'; '.join(r.problems)}" for r in rows if not r.ok], len(rows),
           "world case(s)")


def finish(text: str, failures: list[str], total: int, what: str) -> None:
    """Print the table and what failed; KilnError when anything did."""
    print()
    print(text)
    for line in failures:
        print(line, file=sys.stderr)
    if failures:
        raise KilnError(f"{len(failures)} of {total} {what} failed (details above)")
