"""The fault suite's interrupt and concurrency cases, run for real and summed up in one table.

``invoke faults`` bakes ``app`` from nothing in a fresh KILN_HOME and KILN_CACHE
and interrupts it ten times: SIGINT (Ctrl-C) and SIGTERM (Jenkins' abort) in
each phase — foundation, Packer build, verification boot, specs, publishing.
Each interrupted run is the starting point of the next, so the runs form one
chain that ends in two bakes of ``app`` started at once, which must finish.
After every stop it looks for what a careless bake leaves behind: processes it
started that are still alive, temporary folders and disks, mounts, loop
devices, and catalog records that claim more than is true. It then runs fifty
concurrent catalog writers on SQLite and on the S3 store (against a moto
server on 127.0.0.1) and counts their updates.

Publishing is one catalog write, too short to hit with a signal by timing, so
a bake holds before it when ``KILN_PAUSE_AT=record:<image>`` is set
(``hold_point``); nothing else in Kiln reads that variable.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.proc import Proc, processes
from pipeline.progress import grid

PAUSE_ENV = "KILN_PAUSE_AT"
PAUSE_SECONDS_ENV = "KILN_PAUSE_SECONDS"
EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}
RUN_TIMEOUT = 1800.0
ROOT = Path(__file__).resolve().parent.parent  # where tasks.py is: invoke looks for it in its working folder
WRITERS = 50


def hold_point(point: str, image: str, reporter: Any = None) -> None:
    """Hold the bake here for a while when ``KILN_PAUSE_AT`` names this point and image (fault suite only)."""
    if os.environ.get(PAUSE_ENV) != f"{point}:{image}":
        return
    if reporter is not None:
        reporter.line(f"{image}: holding before {point} ({PAUSE_ENV} is set)")
    time.sleep(float(os.environ.get(PAUSE_SECONDS_ENV, "600")))


# -- the cases -----------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One interrupt: which signal, in which phase, of which image, after how long in that phase."""

    signal: str
    phase: str
    image: str
    settle: float = 0.0  # seconds to wait once the phase is reached, to land deeper in it
    running: str = ""  # a command line that must be running too ("ansible-playbook -e": Packer is provisioning)

    @property
    def name(self) -> str:
        """``SIGINT foundation`` …"""
        return f"{self.signal} {self.phase} ({self.image})"

    def where_words(self) -> str:
        """What the bake's last line must say about where it stopped."""
        return {"foundation": "during the foundation build", "build": f"during build of {self.image}@",
                "verify boot": f"during verify (boot) of {self.image}@",
                "specs": f"during verify (specs) of {self.image}@",
                "publish": f"during record of {self.image}@"}[self.phase]


# Every phase gets both signals; a case's next run passes through the phase it interrupted
# (except the first foundation case, whose next run is interrupted in the foundation again).
CHAIN: tuple[Case, ...] = (
    Case("SIGINT", "foundation", "base", settle=8),
    Case("SIGTERM", "foundation", "base", settle=30),
    Case("SIGINT", "build", "base", settle=5),
    Case("SIGTERM", "verify boot", "base", settle=3),
    Case("SIGINT", "specs", "base", settle=2),
    Case("SIGTERM", "publish", "base"),
    Case("SIGTERM", "build", "app", settle=3, running="ansible-playbook -e"),  # Packer's Ansible provisioning
    Case("SIGINT", "verify boot", "app", settle=10),
    Case("SIGTERM", "specs", "app", settle=4),
    Case("SIGINT", "publish", "app"),
)


@dataclass
class Outcome:
    """What one case found: the columns of the table, and the evidence behind them."""

    case: str
    phase: str
    signal: str = ""
    orphans: int = 0
    half_published: int = 0
    resumed: str = "-"
    seconds: float = 0.0
    stop_seconds: float = 0.0
    exit_code: int | None = None
    last_line: str = ""
    version: str = ""
    problems: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No orphan, nothing half-published, resumed where that applies, and no other problem."""
        return not self.orphans and not self.half_published and self.resumed in ("yes", "-") and not self.problems


# -- processes -------------------------------------------------------------------

def descendants(root: int, table: dict[int, Proc], known: Iterable[int] = ()) -> set[int]:
    """Pids below ``root`` (or below any pid of ``known``, which catches children whose parent already left)."""
    children: dict[int, list[int]] = {}
    for p in table.values():
        children.setdefault(p.ppid, []).append(p.pid)
    out: set[int] = set()
    todo = [root, *known]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def become_subreaper() -> None:
    """Have orphans of the bakes we start re-parented to this process, not to init.

    They then stay in the process tree the suite follows, so none escapes the
    count, and their exit statuses come back here (``reap``).
    """
    import ctypes

    pr_set_child_subreaper = 36
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1, 0, 0, 0)


def reap(table: dict[int, Proc]) -> None:
    """Collect exited orphans re-parented to us (call it only once the bakes started here were waited for)."""
    me = os.getpid()
    for p in table.values():
        if p.ppid == me and p.state == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(p.pid, os.WNOHANG)


class Watch:
    """Follows a running bake: its output lines as they come, and every process it started."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.err: list[str] = []
        self.seen: dict[tuple[int, int], Proc] = {}
        self._threads = [threading.Thread(target=self._read, args=(proc.stdout, self.lines), daemon=True),
                         threading.Thread(target=self._read, args=(proc.stderr, self.err), daemon=True)]
        for t in self._threads:
            t.start()

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def poll(self) -> dict[int, Proc]:
        """Record the bake's process tree now; return the live processes in it."""
        table = processes()
        known = {pid for pid, _ in self.seen if pid in table}
        live = {pid: table[pid] for pid in descendants(self.proc.pid, table, known)}
        for p in live.values():
            self.seen[(p.pid, p.start)] = p
        return live

    def wait_for(self, ready: Callable[[dict[int, Proc]], bool], timeout: float) -> bool:
        """Poll until ``ready(live processes)`` or the bake exits or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if ready(self.poll()):
                return True
            time.sleep(0.2)
        return False

    @contextlib.contextmanager
    def stopping(self) -> Iterator[Watch]:
        """If the suite itself is interrupted, the bake it watches is stopped as Jenkins would (SIGTERM)."""
        try:
            yield self
        except BaseException:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=300)
            raise

    def finish(self, timeout: float) -> int:
        """Wait for the bake to exit; its output is complete afterwards."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            code = self.proc.wait(timeout=300)
        for t in self._threads:
            t.join(5)  # a process left behind may still hold the pipe: it is counted, not waited for
        return code

    def survivors(self) -> list[Proc]:
        """Processes the bake started that are still alive (zombies aside)."""
        table = processes()
        if self.proc.poll() is not None:
            reap(table)
        return [p for (pid, start), p in self.seen.items()
                if pid in table and table[pid].start == start and table[pid].state != "Z"]

    def has_line(self, *words: str) -> bool:
        """Whether an output line contains every one of ``words``."""
        return any(all(w in line for w in words) for line in self.lines)


def phase_reached(case: Case, watch: Watch) -> Callable[[dict[int, Proc]], bool]:
    """The condition that says the bake is inside ``case.phase`` now."""
    image = f"{case.image}@"

    def ready(live: dict[int, Proc]) -> bool:
        cmds = [p.cmdline for p in live.values()]
        qemus = [c for c in cmds if Path(c.split(" ", 1)[0]).name.startswith("qemu-system")]
        if case.phase == "foundation":
            return watch.has_line("foundation: building") and any("mmdebstrap" in c for c in cmds)
        if case.phase == "build":
            return (watch.has_line(image, ": build …") and any("packer" in c for c in cmds) and bool(qemus)
                    and (not case.running or any(case.running in c for c in cmds)))
        if case.phase == "verify boot":
            return (watch.has_line(image, ": verify …") and not watch.has_line(image, "VM up")
                    and any("/runs/" in c for c in qemus))
        if case.phase == "specs":
            return watch.has_line(image, "running specs") and any("pytest" in c for c in cmds)
        if case.phase == "publish":
            return watch.has_line(f"{case.image}: holding before record")
        raise ValueError(case.phase)

    return ready


# -- what is left behind ------------------------------------------------------------

TMP_PATTERNS = ("kiln-*", "packer*", "mmdebstrap.*", "apt-dpkg-install-*", "tmp*")


def tmp_entries() -> set[Path]:
    """The temporary folders and files that the tools Kiln runs may create in /tmp."""
    return {p for pattern in TMP_PATTERNS for p in Path("/tmp").glob(pattern)}


def leftovers(home: Path, cache: Path, tmp_before: set[Path]) -> list[str]:
    """Temporary disks, folders, mounts and loop devices a stopped bake left behind."""
    found = [f"scratch: {p}" for p in sorted((home / "runs").glob("*"))]
    found += [f"partial image: {p}" for p in sorted((home / "images").rglob("*.partial"))]
    found += [f"foundation work folder: {p}" for p in sorted((cache / "foundation").glob(".build-*"))]
    found += [f"temporary: {p}" for p in sorted(tmp_entries() - tmp_before)]
    for line in Path("/proc/mounts").read_text().splitlines():
        point = line.split()[1]
        in_new_tmp = point.startswith("/tmp/") and Path(*Path(point).parts[:3]) not in tmp_before
        if str(home) in point or str(cache) in point or in_new_tmp:
            found.append(f"mount: {point}")
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        with contextlib.suppress(OSError):
            name = backing.read_text().strip()
            if str(cache) in name or str(home) in name:
                found.append(f"loop device: {backing.parent.parent.name} on {name}")
    return found


def half_published(home: Path, interrupted: tuple[str, str] | None) -> list[str]:
    """Catalog records that claim more than is true, and store files no record owns."""
    from pipeline.catalog import Catalog

    problems = []
    path = home / "catalog.db"
    if not path.exists():
        return []
    with Catalog.open(path) as cat:
        records = cat.versions()
        owned = set()
        for rec in records:
            art = rec.artifact("local")
            if art is not None and art.path:
                owned.add(Path(art.path))
            if rec.status == "building":
                problems.append(f"{rec.ref} is still 'building' with no bake running")
            if rec.status != "verified":
                continue
            if art is None or not art.path or not Path(art.path).exists():
                problems.append(f"{rec.ref} is verified but its image file is missing")
            report = Path(rec.report) if rec.report else None
            if report is None or not report.exists() or json.loads(report.read_text()).get("status") != "verified":
                problems.append(f"{rec.ref} is verified without a passing verification report")
            if interrupted == (rec.name, rec.version):
                problems.append(f"{rec.ref} is verified although its bake was interrupted before recording it")
        for name in {r.name for r in records}:
            for channel, version in cat.channels(name).items():
                if version and cat.get(name, version).status != "verified":
                    problems.append(f"{name} channel {channel} points at {version}, which is not verified")
    for image in (home / "images").rglob("*.qcow2"):
        if image not in owned:
            problems.append(f"store file no record owns: {image}")
    return problems


# -- running the chain ------------------------------------------------------------

def kiln_env(home: Path, cache: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of one bake of the chain."""
    env = {k: v for k, v in os.environ.items() if k not in (PAUSE_ENV, PAUSE_SECONDS_ENV)}
    return {**env, "KILN_HOME": str(home), "KILN_CACHE": str(cache), "NO_COLOR": "1", **(extra or {})}


def start_bake(image: str, env: dict[str, str]) -> Watch:
    """``invoke bake IMAGE`` as a terminal would start it (SIGINT not ignored)."""
    invoke = str(Path(sys.executable).parent / "invoke")
    proc = subprocess.Popen(
        [invoke, "bake", image], env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return Watch(proc)


VERSION = re.compile(r"\b([a-z][a-z0-9_-]*)@([0-9][0-9A-Za-z.\-]*)")


def version_in(lines: Sequence[str], image: str) -> str:
    """The version of ``image`` that a bake's output last mentions."""
    found = ""
    for line in lines:
        for name, version in VERSION.findall(line):
            if name == image:
                found = version.rstrip(".:;,")
    return found


def interrupt(case: Case, home: Path, cache: Path, say: Callable[[str], None]) -> tuple[Outcome, Watch]:
    """Run ``invoke bake app``, stop it with ``case.signal`` inside ``case.phase``, and look around."""
    outcome = Outcome(case=case.name, phase=case.phase, signal=case.signal)
    extra = {PAUSE_ENV: f"record:{case.image}", PAUSE_SECONDS_ENV: "600"} if case.phase == "publish" else {}
    tmp_before = tmp_entries()
    started = time.monotonic()
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
    survivors = watch.survivors()
    left = [f"process {p.pid}: {p.cmdline[:120]}" for p in survivors] + leftovers(home, cache, tmp_before)
    for p in survivors:  # do not let one failed case poison the next
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGKILL)
    outcome.orphans = len(left)
    half = half_published(home, (case.image, outcome.version) if outcome.version else None)
    outcome.half_published = len(half)
    outcome.details = left + half
    return outcome, watch


def judge_resume(case: Case, outcome: Outcome, nxt: Watch, catalog_status: Callable[[str, str], str]) -> str:
    """Did the next bake start again where ``case`` stopped it, without redoing finished work?"""
    image, version = case.image, outcome.version
    if case.phase == "foundation":
        return "yes" if nxt.has_line("foundation: building") else "no: the next bake did not rebuild the foundation"
    if case.phase == "build":
        rebuilt = [ln for ln in nxt.lines if f"{image}@" in ln and ": build done" in ln
                   and f"{image}@{version}:" not in ln]
        if catalog_status(image, version) != "interrupted":
            return f"no: {image}@{version} is {catalog_status(image, version)}, not interrupted"
        return "yes" if rebuilt else "no: the next bake did not build a new version"
    if not nxt.has_line(f"{image}@{version}: resume"):
        return f"no: the next bake did not resume {image}@{version}"
    if nxt.has_line(f"{image}@{version}: build …"):
        return f"no: the next bake rebuilt {image}@{version}"
    return "yes"


def run_chain(workdir: Path, say: Callable[[str], None]) -> list[Outcome]:
    """The ten interrupt cases, then two bakes at once that must finish what they left."""
    from pipeline.catalog import Catalog

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
    return outcomes


def finish_twice(home: Path, cache: Path, pending: list[tuple[Case, Outcome]],
                 status: Callable[[str, str], str], say: Callable[[str], None]) -> Outcome:
    """Two bakes of app at once: one finishes the interrupted work, the other waits and reuses it."""
    from pipeline.catalog import Catalog

    outcome = Outcome(case="two bakes of app at once", phase="resume + finish")
    tmp_before = tmp_entries()
    started = time.monotonic()
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
    left = [f"process {p.pid}: {p.cmdline[:120]}" for p in first.survivors() + second.survivors()]
    left += leftovers(home, cache, tmp_before)
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


# -- concurrent writers -------------------------------------------------------------

def write_once(cat: Any, n: int) -> None:
    """One writer's work: a bake record, its artifact, verified, promoted to prod."""
    from pipeline.catalog import Artifact

    v = cat.begin_bake(name="app", parent=None, fingerprint="sha256:" + "a" * 64, git_commit="c", git_dirty=False,
                       run_id=f"w{n}", log_dir="/l")
    cat.add_artifact("app", v, Artifact(target="local", id=f"sha256:{n}", path=f"/s/{n}"))
    cat.set_status("app", v, "verified")
    cat.promote("app", v, "prod")


def count_writes(cat: Any) -> tuple[int, int, int]:
    """(records, distinct writers, promotions) of the writers' image."""
    records = cat.versions("app")
    promotes = [e for e in cat.channel_history("app", "prod") if e.action == "promote"]
    return len(records), len({r.run_id for r in records}), len(promotes)


def _sqlite_writer(path: str, n: int) -> None:
    from pipeline.catalog import Catalog

    with Catalog.open(Path(path)) as cat:
        write_once(cat, n)


def sqlite_writers(workdir: Path, writers: int = WRITERS) -> Outcome:
    """``writers`` processes write one catalog file at once; every update must be there."""
    import multiprocessing

    from pipeline.catalog import Catalog

    outcome = Outcome(case=f"{writers} SQLite writers", phase="catalog write")
    path = workdir / "writers.db"
    Catalog.open(path).close()
    started = time.monotonic()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_sqlite_writer, args=(str(path), n)) for n in range(writers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    outcome.seconds = time.monotonic() - started
    outcome.orphans = sum(1 for p in procs if p.is_alive())
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    with Catalog.open(path) as cat:
        counted = count_writes(cat)
    return _writers_verdict(outcome, writers, counted, [f"writer exit codes {failed}"] if failed else [])


def s3_writers(writers: int = WRITERS) -> Outcome:
    """``writers`` threads write the S3 catalog document at once, against a moto server on 127.0.0.1."""
    import boto3
    from moto.server import ThreadedMotoServer

    from pipeline.stores import S3Catalog

    outcome = Outcome(case=f"{writers} S3 writers (moto)", phase="catalog write")
    import logging

    from pipeline.vm import free_port

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    keys = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(keys)
    errors: list[str] = []
    try:
        def client() -> Any:
            return boto3.client("s3", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{port}")

        client().create_bucket(Bucket="kiln-catalog")

        def writer(n: int) -> None:
            try:
                write_once(S3Catalog(client(), "kiln-catalog", "catalog.json", attempts=200), n)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors.append(repr(exc))

        started = time.monotonic()
        threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        outcome.seconds = time.monotonic() - started
        outcome.orphans = sum(1 for t in threads if t.is_alive())
        counted = count_writes(S3Catalog(client(), "kiln-catalog", "catalog.json"))
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return _writers_verdict(outcome, writers, counted, errors[:3])


def _writers_verdict(outcome: Outcome, writers: int, counted: tuple[int, int, int], problems: list[str]) -> Outcome:
    lost = sum(writers - c for c in counted)
    outcome.half_published = lost
    outcome.problems += problems
    outcome.details.append(f"counted {counted[0]} records, {counted[1]} writers, {counted[2]} promotions "
                           f"of {writers} each")
    return outcome


# -- the report ---------------------------------------------------------------------

def table(outcomes: Sequence[Outcome]) -> str:
    """The figures, one row per case."""
    rows = [(o.case, o.phase, str(o.orphans), str(o.half_published), o.resumed.split(":")[0],
             f"{o.seconds:.1f}", f"{o.stop_seconds:.1f}" if o.signal else "-",
             str(o.exit_code) if o.exit_code is not None else "-", "ok" if o.ok else "FAIL")
            for o in outcomes]
    return grid(("CASE", "PHASE", "ORPHANS", "HALF-PUBLISHED", "RESUMED OK", "SECONDS", "STOP S", "EXIT",
                 "VERDICT"), rows)


def run(workdir: Path, *, only: str = "all", say: Callable[[str], None] = print) -> list[Outcome]:
    """Every case (``only``: ``all``, ``interrupts`` or ``writers``), in a fresh ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    outcomes: list[Outcome] = []
    if only in ("all", "interrupts"):
        outcomes += run_chain(workdir, say)
    if only in ("all", "writers"):
        say(f"{WRITERS} concurrent writers on SQLite")
        outcomes.append(sqlite_writers(workdir))
        say(f"{WRITERS} concurrent writers on the S3 store (moto on 127.0.0.1)")
        outcomes.append(s3_writers())
    return outcomes


def write_json(outcomes: Sequence[Outcome], path: Path) -> None:
    """The outcomes as JSON, for tests and CI artifacts."""
    path.write_text(json.dumps([{**asdict(o), "ok": o.ok} for o in outcomes], indent=2) + "\n")


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
