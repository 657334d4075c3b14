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

import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.cli import Terminated
from pipeline.errors import KilnError
from pipeline.progress import Row

Spawn = Callable[[str, Path], "subprocess.Popen[str]"]  # (image, rows file) → its bake, output on stdout
STOP_SECONDS = 300  # how long a stopped bake may take to clean up before it is killed


@dataclass
class Job:
    """One image's bake in this run."""

    image: str
    waits_for: tuple[str, ...]  # parents baked in this run
    rows_file: Path
    proc: subprocess.Popen[str] | None = None
    state: str = "waiting"  # waiting, running, done, failed, skipped, stopped
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
    """Starts each image's bake when its parents are done, at most ``jobs`` at once."""

    def __init__(self, jobs: list[Job], *, limit: int, spawn: Spawn, say: Callable[[str], None],
                 fail_fast: bool = False) -> None:
        self.jobs, self.limit, self.spawn, self.fail_fast = jobs, limit, spawn, fail_fast
        self.lock = threading.Lock()
        self.say = say

    def running(self) -> list[Job]:
        return [j for j in self.jobs if j.state == "running"]

    def run(self) -> Outcome:
        """Every job to its end; an interrupt stops the running ones (with the same signal) and re-raises."""
        try:
            while any(j.state in ("waiting", "running") for j in self.jobs):
                self.start_ready()
                self.reap()
                time.sleep(0.1)
        except KeyboardInterrupt as exc:
            stopped = self.stop(signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
            exc.where = f"during parallel bakes (stopped: {', '.join(stopped) or 'none running'})"  # type: ignore[attr-defined]
            raise
        return Outcome(self.jobs, [row for j in self.jobs for row in rows_of(j)])

    def start_ready(self) -> None:
        for job in self.jobs:
            if len(self.running()) >= self.limit:
                return
            states = {j.image: j.state for j in self.jobs}
            if job.state == "waiting" and all(states[p] == "done" for p in job.waits_for):
                job.proc, job.state = self.spawn(job.image, job.rows_file), "running"
                job.pump = threading.Thread(target=self.pump, args=(job,), daemon=True)
                job.pump.start()

    def pump(self, job: Job) -> None:
        """The bake's lines, prefixed with its image; its last ``kiln:`` line is kept for the summary."""
        assert job.proc is not None and job.proc.stdout is not None
        for line in job.proc.stdout:
            line = line.rstrip("\n")
            if line.startswith("kiln:"):
                job.last_error = line
            with self.lock:
                self.say(f"[{job.image}] {line}")

    def reap(self) -> None:
        for job in self.running():
            assert job.proc is not None
            code = job.proc.poll()
            if code is None or job.state != "running":  # still going, or stopped by --fail-fast meanwhile
                continue
            if job.pump:
                job.pump.join()
            job.state = "done" if code == 0 else "failed"
            if code != 0:
                job.last_error = f"exit {code}: {job.last_error or 'no error line'}"
                self.skip_descendants(job.image)
                if self.fail_fast:
                    self.stop(signal.SIGTERM, reason=f"stopped: {job.image} failed (--fail-fast)")

    def skip_descendants(self, image: str) -> None:
        for job in self.jobs:
            if job.state == "waiting" and image in job.waits_for:
                job.state, job.last_error = "skipped", f"skipped: its parent {image} failed"
                self.skip_descendants(job.image)

    def stop(self, sig: signal.Signals, reason: str = "") -> list[str]:
        """Send ``sig`` to every running bake, wait for each to clean up; nothing waiting starts any more."""
        stopped = self.running()
        for job in stopped:
            assert job.proc is not None
            job.proc.send_signal(sig)
        for job in stopped:
            assert job.proc is not None
            try:
                job.proc.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                job.proc.kill()
                job.proc.wait()
            if job.pump:
                job.pump.join()
            job.state = "stopped"
            job.last_error = reason or "stopped"
        for job in self.jobs:
            if job.state == "waiting":
                job.state, job.last_error = "skipped", reason or "not started: the run was stopped"
        return [j.image for j in stopped]


def rows_of(job: Job) -> list[Row]:
    """The summary rows a job's bake wrote, or one saying why it has none."""
    if job.rows_file.exists():
        return [Row(**row) for row in json.loads(job.rows_file.read_text())]
    if job.state in ("skipped", "stopped", "failed"):
        return [Row(job.image, "-", job.state, 0.0, job.last_error)]
    return []


def write_rows(path: Path, rows: Sequence[Row]) -> None:
    """The summary rows of one bake, for the run that started it."""
    path.write_text(json.dumps([row.__dict__ for row in rows]))


def check(outcome: Outcome) -> None:
    """KilnError naming every image that failed or was skipped."""
    failed = outcome.failures()
    if failed:
        raise KilnError(f"{len(failed)} image(s) not baked: {'; '.join(failed)}",
                        hint="each image's lines above are prefixed with its name")
