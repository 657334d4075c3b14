"""The chain: ``invoke bake app`` stopped in every phase, each stop the start of the next bake."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pipeline import ROOT  # where tasks.py is: invoke looks for it in its working folder
from pipeline.cli import PAUSE_ENV, PAUSE_SECONDS_ENV
from tools.faults.cases import CHAIN, EXIT_CODES, Case, Outcome
from tools.faults.integrity import flipped_parent
from tools.faults.judge import Snapshot, half_published, judge_resume, leftovers, mark, private_tmp, version_in
from tools.faults.watch import Watch, become_subreaper, phase_reached

RUN_TIMEOUT = 1800.0

INVOKE = str(Path(sys.executable).parent / "invoke")


def kiln_env(home: Path, cache: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of one bake of the chain."""
    env = {k: v for k, v in os.environ.items() if k not in (PAUSE_ENV, PAUSE_SECONDS_ENV)}
    return {**env, "KILN_HOME": str(home), "KILN_CACHE": str(cache), "NO_COLOR": "1",
            "TMPDIR": str(private_tmp(home)), **(extra or {})}


def start_bake(image: str, env: dict[str, str], *more: str) -> Watch:
    """``invoke bake IMAGE [MORE…]`` as a terminal would start it (SIGINT not ignored)."""
    proc = subprocess.Popen(
        [INVOKE, "bake", image, *more], env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return Watch(proc)


def janitor(target: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``invoke janitor --target TARGET --older-than 0``: what killed bakes left must be found and removed."""
    return subprocess.run([INVOKE, "janitor", "--target", target, "--older-than", "0"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)


def interrupt(case: Case, home: Path, cache: Path, say: Callable[[str], None]) -> tuple[Outcome, Watch]:
    """Run ``invoke bake app``, stop it with ``case.signal`` inside ``case.phase``, and look around."""
    outcome = Outcome(case=case.name, phase=case.phase, signal=case.signal)
    extra = {PAUSE_ENV: f"record:{case.image}", PAUSE_SECONDS_ENV: "600"} if case.phase == "publish" else {}
    before, started = Snapshot.take(), time.monotonic()
    watch = start_bake("app", kiln_env(home, cache, extra))
    with watch.stopping():
        reached = watch.wait_for(phase_reached(case, watch), RUN_TIMEOUT)
        if reached and case.settle:
            watch.wait_for(lambda _live: False, case.settle)
        if not reached or watch.proc.poll() is not None:
            outcome.problems.append(f"the bake never reached {case.phase} of {case.image} "
                                    f"(exit {watch.proc.poll()}): {' | '.join(watch.err[-3:])}")
        sent = time.monotonic()
        watch.poll()
        say(f"{case.name}: sending {case.signal} after {sent - started:.0f}s")
        watch.proc.send_signal(getattr(signal, case.signal))
        outcome.exit_code = watch.finish(600)
    done = time.monotonic()
    outcome.seconds, outcome.stop_seconds = done - started, done - sent
    time.sleep(1)  # let the kernel reap what was killed last
    outcome.version = version_in(watch.lines, case.image) if case.phase != "foundation" else ""
    err = [ln for ln in watch.err if ln.strip()]
    outcome.last_line = err[-1] if err else ""
    kiln_lines = [ln for ln in err if ln.startswith("kiln:")]
    if outcome.exit_code != EXIT_CODES[case.signal]:
        outcome.problems.append(f"exit code {outcome.exit_code}, expected {EXIT_CODES[case.signal]}")
    if len(kiln_lines) != 1 or case.where_words() not in kiln_lines[0] or "Traceback" in "\n".join(err):
        outcome.problems.append(f"the last line does not say where it stopped: {outcome.last_line!r}")
    survivors = watch.survivors(mark(home))
    left = [f"process {p.pid}: {p.cmdline[:120]}" for p in survivors] + leftovers(home, cache, before)
    for p in survivors:  # do not let one failed case poison the next
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGKILL)
    outcome.orphans = len(left)
    half = half_published(home, (case.image, outcome.version) if outcome.version else None)
    outcome.half_published = len(half)
    outcome.details = left + half
    return outcome, watch


def run_chain(workdir: Path, say: Callable[[str], None]) -> list[Outcome]:
    """The interrupt cases, then two bakes at once that must finish what they left, then bakes that run
    together (``--jobs 2`` interrupted, a lease holder killed), then a damaged parent."""
    from pipeline.catalog import Catalog
    from tools.faults.together import run_together  # it starts bakes as this module does

    become_subreaper()
    home, cache = workdir / "home", workdir / "cache"
    home.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)

    def status(name: str, version: str) -> str:
        from pipeline.errors import KilnError

        with Catalog.open(home / "catalog.db") as cat:
            try:
                return cat.get(name, version).status
            except KilnError:
                return "missing"

    outcomes: list[Outcome] = []
    pending: list[tuple[Case, Outcome]] = []
    for case in CHAIN:
        say(f"{case.name}: baking app until {case.phase} of {case.image}")
        outcome, watch = interrupt(case, home, cache, say)
        outcomes.append(outcome)
        say(f"{case.name}: exit {outcome.exit_code} in {outcome.stop_seconds:.1f}s after the signal; "
            f"orphans {outcome.orphans}, half-published {outcome.half_published}")
        for line in outcome.details + outcome.problems:
            say(f"    {line}")
        for earlier, earlier_outcome in pending:
            earlier_outcome.resumed = judge_resume(earlier, earlier_outcome, watch, status)
        pending = [(case, outcome)]
        if outcome.problems and "never reached" in outcome.problems[0]:
            say("stopping the chain: a phase was not reached")
            return outcomes
    outcomes.append(finish_twice(home, cache, pending, status, say))
    outcomes += run_together(home, cache, say)
    outcomes.append(flipped_parent(home, cache, kiln_env(home, cache), ROOT, say))
    return outcomes


def finish_twice(home: Path, cache: Path, pending: list[tuple[Case, Outcome]],
                 status: Callable[[str, str], str], say: Callable[[str], None]) -> Outcome:
    """Two bakes of app at once: one finishes the interrupted work, the other waits and reuses it."""
    from pipeline.catalog import Catalog

    outcome = Outcome(case="two bakes of app at once", phase="resume + finish")
    before, started = Snapshot.take(), time.monotonic()
    say("two bakes of app at once, to finish the chain")
    first = start_bake("app", kiln_env(home, cache))
    with first.stopping():
        time.sleep(2)
        second = start_bake("app", kiln_env(home, cache))
        with second.stopping():
            while first.proc.poll() is None or second.proc.poll() is None:
                first.poll()
                second.poll()
                time.sleep(0.5)
            codes = [first.finish(60), second.finish(60)]
    outcome.seconds = time.monotonic() - started
    outcome.exit_code = max(codes)
    time.sleep(1)
    # Whichever took the image's lock first did the work; the other must have waited and reused it.
    worker, waiter = (second, first) if second.has_line("app@", ": resume") else (first, second)
    for case, earlier in pending:
        earlier.resumed = judge_resume(case, earlier, worker, status)
    left = [f"process {p.pid}: {p.cmdline[:120]}" for p in first.survivors(mark(home)) + second.survivors()]
    left += leftovers(home, cache, before)
    half = half_published(home, None)
    outcome.orphans, outcome.half_published, outcome.details = len(left), len(half), left + half
    if codes != [0, 0]:
        outcome.problems.append(f"exit codes {codes}: {' | '.join((first.err + second.err)[-4:])}")
    with Catalog.open(home / "catalog.db") as cat:
        latest = {name: cat.latest(name) for name in ("base", "app")}
        built = {name: len([r for r in cat.versions(name) if r.status == "verified"]) for name in ("base", "app")}
    if any(rec is None or rec.status != "verified" for rec in latest.values()):
        outcome.problems.append("base and app are not both verified at the end")
    if built != {"base": 1, "app": 1}:
        outcome.problems.append(f"expected one verified version of each image, found {built}")
    waited = waiter.has_line("another bake of app") and waiter.has_line("up to date: app")
    if not waited:
        outcome.problems.append("the second bake did not wait for the first and reuse its images")
    outcome.resumed = "yes" if not outcome.problems else "no"
    outcome.details.append(f"verified versions: {built}; second bake waited and reused: {waited}")
    return outcome
