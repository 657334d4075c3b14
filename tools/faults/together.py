"""Two cases of the chain for bakes that run together: Ctrl-C during ``--jobs 2``, and a lease holder SIGKILLed.

They run on the chain's KILN_HOME once base and app are verified, in a copy of
the project with two siblings of app (``app2``, ``app3``: app's playbook and
specs). First ``bake app2,app3 --jobs 2`` is interrupted while both build:
every bake must stop, the line must name both, and nothing may be left. Then a
bake of app2 is killed outright (its whole process tree, as a machine that
died) while its verification VM boots, with a second bake waiting on its lease: the waiter
must take the lease over once it expires, go on with the image the dead bake
stored instead of building again, and the janitor must remove what is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from tools.bench_builders import copy_project
from tools.faults.cases import EXIT_CODES, Outcome
from tools.faults.chain import ROOT, janitor, kiln_env, start_bake
from tools.faults.judge import Snapshot, half_published, leftovers, mark, version_in
from tools.faults.watch import Watch

SIBLINGS = "".join(f'\n[images.{name}]\nparent = "base"\nplaybook = "playbooks/app.yml"\nspecs = "specs/app"\n'
                   'forward = { http = 80 }\n' for name in ("app2", "app3"))
LEASE_SECONDS = "10"  # the killed bake's lease expires quickly; a SQLite lease then waits out the skew margin


def run_together(home: Path, cache: Path, say: Callable[[str], None]) -> list[Outcome]:
    """Both cases, in a project with app2 and app3 beside app."""
    project = home.parent / "siblings"
    if not project.exists():
        copy_project(ROOT, project)
        with open(project / "kiln.toml", "a") as toml:
            toml.write(SIBLINGS)
    env = kiln_env(home, cache, {"KILN_PROJECT": str(project), "KILN_LEASE_SECONDS": LEASE_SECONDS})
    return [interrupt_jobs(home, cache, env, say), kill_holder(home, cache, env, say)]


def interrupt_jobs(home: Path, cache: Path, env: dict[str, str], say: Callable[[str], None]) -> Outcome:
    """SIGINT to ``bake app2,app3 --jobs 2`` once both build."""
    outcome = Outcome(case="SIGINT --jobs 2 (app2, app3)", phase="build", signal="SIGINT")
    before, started = Snapshot.take(), time.monotonic()
    say(f"{outcome.case}: baking app2 and app3 at once until both build")
    watch = start_bake("app2,app3", env, "--jobs", "2")
    with watch.stopping():
        both = watch.wait_for(lambda live: all(watch.has_line(f"[{i}]", f"{i}@", "build: mounted, converging")
                                                for i in ("app2", "app3"))
                              and any("ansible-playbook" in p.cmdline for p in live.values()), 900)
        if not both:
            outcome.problems.append(f"the two bakes never both built (exit {watch.proc.poll()}): {watch.err[-3:]}")
        watch.wait_for(lambda _live: False, 3)  # deep in the chroot converge
        sent = time.monotonic()
        watch.proc.send_signal(signal.SIGINT)
        outcome.exit_code = watch.finish(600)
    outcome.seconds, outcome.stop_seconds = time.monotonic() - started, time.monotonic() - sent
    time.sleep(1)
    outcome.last_line = next((ln for ln in reversed(watch.err) if ln.strip()), "")
    if outcome.exit_code != EXIT_CODES["SIGINT"]:
        outcome.problems.append(f"exit code {outcome.exit_code}, expected {EXIT_CODES['SIGINT']}")
    judge(outcome, home, cache, before, watch, {"app2": "interrupted", "app3": "interrupted"})
    return outcome


def kill_holder(home: Path, cache: Path, env: dict[str, str], say: Callable[[str], None]) -> Outcome:
    """SIGKILL to every process of a bake of app2 in verification while a second bake waits on its lease."""
    outcome = Outcome(case="SIGKILL lease holder (app2)", phase="verify boot", signal="SIGKILL")
    before, started = Snapshot.take(), time.monotonic()
    say(f"{outcome.case}: baking app2 until it verifies, a second bake waiting for it")
    holder = start_bake("app2", env)
    with holder.stopping():
        if not holder.wait_for(lambda live: holder.has_line("app2@", ": verify …")
                               and any("/runs/" in p.cmdline and "qemu-system" in p.cmdline for p in live.values()),
                               900):
            outcome.problems.append(f"the bake never verified (exit {holder.proc.poll()}): {holder.err[-3:]}")
        waiter = start_bake("app2", env)
        with waiter.stopping():
            # On one machine the second bake first waits on the image's lock, which dies with the holder; the
            # holder's lease in the catalog does not, and keeps it waiting until it expires.
            waiter.wait_for(lambda _live: waiter.has_line("app2: another bake of app2"), 120)
            sent = time.monotonic()
            for proc in [*holder.poll().values()]:  # the whole tree at once: nothing gets to clean up
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
            holder.proc.kill()
            outcome.exit_code = holder.finish(60)
            outcome.stop_seconds = time.monotonic() - sent
            code = waiter.finish(1800)
    outcome.seconds = time.monotonic() - started
    outcome.version = version_in(holder.lines, "app2")
    outcome.last_line = next((ln for ln in reversed(waiter.err + waiter.lines) if ln.strip()), "")
    outcome.resumed = went_on(waiter, code, outcome.version)
    outcome.details += sweep(env)
    judge(outcome, home, cache, before, waiter, {"app2": "verified"})
    return outcome


def went_on(waiter: Watch, code: int, version: str) -> str:
    """The waiter took the dead bake's lease over and verified the image it had stored, building nothing."""
    if code != 0:
        return f"no: the waiting bake exited {code}: {waiter.err[-2:]}"
    if not waiter.has_line("app2: took over the lease on", "which stopped renewing it"):
        return "no: the waiting bake did not say it took over the lease"
    if not waiter.has_line(f"app2@{version}", "resume") or waiter.has_line("app2@", ": build …"):
        return f"no: the waiting bake did not go on with app2@{version} (it built again, or resumed another)"
    return "yes"


def sweep(env: dict[str, str]) -> list[str]:
    """``invoke janitor --target local``: what the killed bake left (its run's scratch) goes."""
    done = janitor("local", env)
    return [f"janitor --target local (exit {done.returncode}): {ln}" for ln in done.stdout.splitlines()]


def judge(outcome: Outcome, home: Path, cache: Path, before: Snapshot, watch: Watch, expected: dict[str, str]) -> None:
    """Nothing left (processes, mounts, loop devices, scratch), nothing half-published (a live lease among
    it), and each image's last version as ``expected``."""
    from pipeline.catalog import Catalog

    survivors = watch.survivors(mark(home))
    for p in survivors:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGKILL)
    left = [f"process {p.pid}: {p.cmdline[:120]}" for p in survivors] + leftovers(home, cache, before)
    half = half_published(home, None)
    with Catalog.open(home / "catalog.db") as cat:
        found = {name: [r.status for r in cat.versions(name)][-1:] for name in expected}
        verified = [r.version for r in cat.versions("app2") if r.status == "verified"]
    half += [f"{name}'s last version is {found[name]}, not {status}" for name, status in expected.items()
             if found[name] != [status]]
    if len(verified) > 1:
        half.append(f"app2 has {len(verified)} verified versions: {verified}")
    outcome.orphans, outcome.half_published = len(left), len(half)
    outcome.details += left + half
