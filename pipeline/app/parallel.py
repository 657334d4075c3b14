"""Several images at once (``invoke bake --all --jobs N``): the run's plan handed to the scheduler.

Each outdated image becomes a ``Job`` waiting for the parents baked in this
run; ``pipeline.bake.schedule`` starts each as ``invoke bake IMAGE`` with the
run's options once they are done, and its summary rows come back as JSON.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import ROOT, config
from pipeline.bake import schedule
from pipeline.bake.plan import UP_TO_DATE
from pipeline.bake.schedule import Job, Scheduler, Spawn, rows_of
from pipeline.errors import ConfigError
from pipeline.progress import Reporter

if TYPE_CHECKING:
    from pipeline.app.baking import BakeResult



def job_count(value: int | str) -> int:
    """``--jobs``: a whole number, at least 1."""
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise ConfigError(f"--jobs {value}: not a number of bakes at once", hint="a whole number, at least 1; "
                          "e.g. --jobs 2")
    return count


def at_once(project: config.Project, names: Sequence[str], jobs: int) -> int:
    """How many bakes of ``names`` and their ancestors could run at once, at most ``jobs``: the images no other
    one of them is built on. A chain (base, app) bakes one image at a time whatever ``jobs`` says, so it
    stays in this process, as with ``--jobs 1``."""
    ordered = project.order(names)
    parents = {spec.parent for spec in ordered}
    return min(jobs, sum(1 for spec in ordered if spec.name not in parents))


def bake_many(project: config.Project, result: BakeResult, log_dir: Path, reporter: Reporter, spawn: Spawn, *,
              jobs: int, fail_fast: bool) -> BakeResult:
    """Every outdated image of ``result.decisions`` in a bake of its own, at most ``jobs`` at once."""
    todo = [d for d in result.decisions if d.action != UP_TO_DATE]
    for decision in result.decisions:
        (reporter.line if decision in todo else reporter.say)(decision.describe())
    baked = {d.image for d in todo}
    log_dir.mkdir(parents=True, exist_ok=True)
    work = [Job(d.image, tuple(p for p in (project.get(d.image).parent,) if p in baked),
                log_dir / f"{d.image}.rows.json") for d in todo]
    scheduler = Scheduler(work, limit=jobs, spawn=spawn, say=reporter.say, fail_fast=fail_fast)
    try:
        outcome = scheduler.run()
    except KeyboardInterrupt as exc:
        exc.verified = tuple(f"{r.image}@{r.version}" for j in work  # type: ignore[attr-defined]
                             for r in rows_of(j) if r.status == "verified")
        raise
    finally:
        result.rows.extend(row for job in work for row in rows_of(job))
    schedule.check(outcome)
    return result


def invoke_bake(options: dict[str, str | bool], forced: Sequence[str]) -> Spawn:
    """Starts ``invoke bake IMAGE`` with ``options`` (``--force`` for ``forced`` images), in a session of its own:
    signals reach it from this run only."""

    def spawn(image: str, rows: Path) -> subprocess.Popen[str]:
        argv = [sys.executable, "-m", "invoke", "--search-root", str(ROOT), "bake", image, "--rows-json",
                str(rows), *(["--force"] if image in forced else [])]
        for flag, value in options.items():
            argv += [f"--{flag}"] if value is True else [f"--{flag}", value] if value else []
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                encoding="utf-8", errors="replace", start_new_session=True)

    return spawn
