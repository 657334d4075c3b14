"""Bake several images at once (``invoke bake --all --jobs N``): each image in its own bake process.

An image starts when every parent it waits for in this run is done, at most
N at a time, so dependency order always holds. Each is a whole ``invoke bake
IMAGE`` of its own — its lock, its lease, its cleanup on a signal — so
running several changes nothing a single bake guarantees. Their lines are
prefixed with the image. A failed image's siblings go on and its
descendants are skipped (``fail_fast`` stops everything instead). Ctrl-C or
SIGTERM is passed to every running bake, each cleans up as it would alone,
and the interrupt names every image that was stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.bake.lease import LeaseHeld
from pipeline.errors import KilnError, Terminated
from pipeline.progress import Row

Spawn = Callable[[str, Path], "subprocess.Popen[str]"]  # (image, rows file) → its bake, in its own session
STOP_SECONDS = 300  # how long stopped bakes may take to clean up, all together, before they are killed
BUSY = LeaseHeld.exit_code


@dataclass
class Job:
    """One image's bake in this run."""

    image: str
    waits_for: tuple[str, ...]  # parents baked in this run
    rows_file: Path
    proc: subprocess.Popen[str] | None = None
    state: str = "waiting"  # waiting, running, done, failed, skipped, stopped
    code: int | None = None
    last_error: str = ""
    pump: threading.Thread | None = None


@dataclass
class Outcome:
    """What every image's bake ended as, and the summary rows they wrote."""

    jobs: list[Job]
    rows: list[Row] = field(default_factory=list)

    def failures(self) -> list[str]:
        """``app (exit 1: kiln: error: …)`` for each failed image, and each stopped or skipped one with why."""
        return [f"{j.image} ({j.last_error})" for j in self.jobs if j.state in ("failed", "skipped", "stopped")]


class Scheduler:
    """Starts each image's bake when its parents are done, at most ``limit`` at once."""

    def __init__(self, jobs: list[Job], *, limit: int, spawn: Spawn, say: Callable[[str], None],
                 fail_fast: bool = False) -> None:
        self.jobs, self.limit, self.spawn, self.fail_fast = jobs, limit, spawn, fail_fast
        self.lock = threading.Lock()
        self.say = say

    def running(self) -> list[Job]:
        """The jobs whose bake was started and has not been seen to end."""
        return [j for j in self.jobs if j.state == "running"]

    def run(self) -> Outcome:
        """Every job to its end. Anything that ends the run early (an interrupt above all) first stops every
        running bake — with the signal this run got — so no bake outlives the run."""
        try:
            while any(j.state in ("waiting", "running") for j in self.jobs):
                self.start_ready()
                self.reap()
                time.sleep(0.1)
        except BaseException as exc:
            stopped = self.stop(signal.SIGTERM if isinstance(exc, Terminated | Exception) else signal.SIGINT)
            if isinstance(exc, KeyboardInterrupt):
                exc.where = f"during parallel bakes (stopped: {', '.join(stopped) or 'none running'})"  # type: ignore[attr-defined]
            raise
        return Outcome(self.jobs, [row for j in self.jobs for row in rows_of(j)])

    def start_ready(self) -> None:
        """Start every waiting job whose parents are done, while there is room."""
        for job in self.jobs:
            if len(self.running()) >= self.limit:
                return
            states = {j.image: j.state for j in self.jobs}
            if job.state == "waiting" and all(states[p] == "done" for p in job.waits_for):
                job.state = "running"  # first: an interrupt inside spawn still finds it to stop
                job.proc = self.spawn(job.image, job.rows_file)
                job.pump = threading.Thread(target=self.pump, args=(job,), daemon=True)
                job.pump.start()

    def pump(self, job: Job) -> None:
        """The bake's lines, prefixed with its image, read to the end whatever happens to the terminal (a
        bake whose pipe fills stops); its last ``kiln:`` line is kept for the summary."""
        assert job.proc is not None and job.proc.stdout is not None
        for line in job.proc.stdout:
            line = line.rstrip("\n")
            if line.startswith("kiln:"):
                job.last_error = line
            with self.lock, contextlib.suppress(OSError):
                self.say(f"[{job.image}] {line}")

    def reap(self) -> None:
        """Record each bake that ended; a failure skips its descendants (and with ``fail_fast`` stops all)."""
        for job in self.running():
            if job.proc is None or job.proc.poll() is None or job.state != "running":
                continue  # still going, or stopped by --fail-fast meanwhile
            if job.pump:
                job.pump.join()  # every line printed, the last error line known
            job.code = job.proc.returncode
            job.state = "done" if job.code == 0 else "failed"
            if job.code != 0:
                job.last_error = f"exit {job.code}: {job.last_error or 'no error line'}"
                self.skip_descendants(job.image)
                if self.fail_fast:
                    self.stop(signal.SIGTERM, reason=f"stopped: {job.image} failed (--fail-fast)")

    def skip_descendants(self, image: str) -> None:
        """Every job waiting, directly or not, for ``image`` will not run."""
        for job in self.jobs:
            if job.state == "waiting" and image in job.waits_for:
                job.state, job.last_error = "skipped", f"skipped: its parent {image} failed"
                self.skip_descendants(job.image)

    def stop(self, sig: signal.Signals, reason: str = "") -> list[str]:
        """Send ``sig`` to every running bake and wait for them to clean up (another interrupt meanwhile sends
        it again; past ``STOP_SECONDS`` they are killed); nothing waiting starts any more."""
        stopped = [j for j in self.running() if j.proc is not None]
        for job in stopped:
            with contextlib.suppress(ProcessLookupError):
                job.proc.send_signal(sig)  # type: ignore[union-attr]
        deadline = time.monotonic() + STOP_SECONDS
        while any(j.proc.poll() is None for j in stopped):  # type: ignore[union-attr]
            try:
                if time.monotonic() > deadline:
                    for job in stopped:
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(job.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
                time.sleep(0.1)
            except KeyboardInterrupt:
                for job in stopped:
                    with contextlib.suppress(ProcessLookupError):
                        job.proc.send_signal(sig)  # type: ignore[union-attr]
        for job in stopped:
            if job.pump:
                job.pump.join()
            job.code = job.proc.returncode  # type: ignore[union-attr]
            job.state = "done" if job.code == 0 else "stopped"
            job.last_error = "" if job.code == 0 else reason or "stopped"
        for job in self.jobs:
            if job.state == "waiting":
                job.state, job.last_error = "skipped", reason or "not started: the run was stopped"
        return [j.image for j in stopped if j.state == "stopped"]


def rows_of(job: Job) -> list[Row]:
    """The summary rows a job's bake wrote, and one for the job itself when none names it (it ended before
    baking anything: skipped, stopped or failed early)."""
    rows = [Row(**row) for row in json.loads(job.rows_file.read_text())] if job.rows_file.exists() else []
    if job.state in ("skipped", "stopped", "failed") and not any(r.image == job.image for r in rows):
        rows.append(Row(job.image, "-", job.state, 0.0, job.last_error))
    return rows


def write_rows(path: Path, rows: Sequence[Row]) -> None:
    """The summary rows of one bake, for the run that started it."""
    path.write_text(json.dumps([row.__dict__ for row in rows]))


def check(outcome: Outcome) -> None:
    """KilnError naming every image that failed, was stopped or skipped; LeaseHeld (exit 75) when the only
    failures are bakes told not to wait for another machine's."""
    failed = outcome.failures()
    if not failed:
        return
    ended = [j for j in outcome.jobs if j.state in ("failed", "stopped")]  # the skipped follow from these
    kind = LeaseHeld if ended and all(j.code == BUSY for j in ended) else KilnError
    raise kind(f"{len(failed)} image(s) not baked: {'; '.join(failed)}",
               hint="each image's lines above are prefixed with its name")
