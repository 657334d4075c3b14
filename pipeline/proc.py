"""Running external tools: plan (argv, env, cwd) apart from execution.

Every child runs in its own process group, so an interrupt kills the tool and
everything it started (Packer's QEMU, Ansible's SSH); output goes to a log file,
never to the terminal unless the caller asks to stream it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import CommandFailed, ToolMissing


@dataclass(frozen=True)
class Invocation:
    """A planned command: what to run, with which environment, where."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None

    def full_env(self) -> dict[str, str]:
        """The process environment with this invocation's additions."""
        merged = dict(os.environ)
        merged.update(self.env)
        return merged


@dataclass(frozen=True)
class Result:
    """What a finished command did."""

    argv: tuple[str, ...]
    returncode: int
    seconds: float
    log: Path | None


def _kill_group(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Stop a process group: SIGTERM, then SIGKILL after ``grace`` seconds."""
    if proc.poll() is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run(inv: Invocation, log: Path | None = None, *, check: bool = True, stream: bool = False,
        what: str | None = None, tick: Callable[[float], None] | None = None,
        tick_every: float = 30.0) -> Result:
    """Run ``inv`` to completion, appending its output to ``log``.

    ``tick(elapsed)`` is called every ``tick_every`` seconds while it runs, so long
    steps can show progress. On any exception (including KeyboardInterrupt) the
    whole process group is killed before the exception propagates, so nothing
    outlives the caller.
    """
    start = time.monotonic()
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    try:
        if log:
            out.write(f"$ {' '.join(inv.argv)}\n".encode())
            out.flush()
        proc = subprocess.Popen(
            inv.argv, env=inv.full_env(), cwd=inv.cwd, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stream else out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            if stream and proc.stdout is not None:
                for line in proc.stdout:
                    sys.stdout.buffer.write(line)
                    sys.stdout.flush()
                    if log:
                        out.write(line)
            while True:
                try:
                    proc.wait(timeout=tick_every if tick else None)
                    break
                except subprocess.TimeoutExpired:
                    if tick:
                        tick(time.monotonic() - start)
        except BaseException:
            _kill_group(proc)
            raise
        # Tools may leave children behind in their group (ssh control masters).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if log:
            out.close()
    result = Result(inv.argv, proc.returncode, time.monotonic() - start, log)
    if check and proc.returncode != 0:
        raise CommandFailed(
            f"{what or Path(inv.argv[0]).name} failed (exit {proc.returncode})", log=log)
    return result


def capture(argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 60) -> str:
    """Run a short command and return its stdout; raise CommandFailed with its stderr."""
    merged = dict(os.environ)
    merged.update(env or {})
    try:
        done = subprocess.run(list(argv), env=merged, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    except FileNotFoundError as exc:
        raise CommandFailed(f"{argv[0]} not found") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise CommandFailed(f"{' '.join(argv[:2])} failed: {detail[-1] if detail else done.returncode}")
    return done.stdout


def require_version(argv: Sequence[str], name: str, minimum: tuple[int, ...], hint: str) -> tuple[int, ...]:
    """The version ``argv`` prints (its first ``x.y[.z]``); ToolMissing, with ``hint``, when below ``minimum``.

    Checked before anything starts, so an old tool fails in one line rather
    than halfway through a build with an option it does not know.
    """
    try:
        out = capture(argv, timeout=30)
    except CommandFailed as exc:
        raise ToolMissing(f"{name}: `{' '.join(argv)}` failed ({exc.message})", hint=hint) from None
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    if not match:
        raise ToolMissing(f"{name}: cannot read a version from `{' '.join(argv)}`: {out.strip()[:80]!r}", hint=hint)
    found = tuple(int(g or 0) for g in match.groups())
    if found < minimum:
        raise ToolMissing(f"{name} {'.'.join(map(str, found))} is too old (Kiln needs "
                          f"{'.'.join(map(str, minimum))} or newer)", hint=hint)
    return found


@contextlib.contextmanager
def background(inv: Invocation, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``inv`` for the duration of the block; kill its process group on exit."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(inv.argv, env=inv.full_env(), cwd=inv.cwd, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        _kill_group(proc)


@dataclass(frozen=True)
class Proc:
    """A process as /proc shows it; (pid, start) tells it apart from a later one with the same pid."""

    pid: int
    ppid: int
    start: int
    state: str
    cmdline: str


def processes() -> dict[int, Proc]:
    """Every process on the machine, read from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        rest = stat.rsplit(")", 1)[1].split()
        found[int(entry.name)] = Proc(int(entry.name), int(rest[1]), int(rest[19]), rest[0], cmdline)
    return found


def kill_stray(marker: str) -> list[int]:
    """SIGKILL every process (and its group) whose command line mentions ``marker``; return their pids.

    For tools that leave the process group Kiln started them in: ansible-core
    2.19's ansible-playbook, when run on a pseudo-terminal as ansible-runner
    does, continues in a session of its own, which killing the group misses.
    Kiln's own process group is never signalled as a whole.
    """
    me, own_group = os.getpid(), os.getpgrp()
    found = []
    for pid, info in processes().items():
        if pid == me or marker not in info.cmdline:
            continue
        try:
            group = os.getpgid(pid)
            if group != own_group:
                os.killpg(group, signal.SIGKILL)
            os.kill(pid, signal.SIGKILL)
            found.append(pid)
        except OSError:
            continue
    return found


@contextlib.contextmanager
def deferred_signals() -> Iterator[Callable[[], bool]]:
    """Hold SIGINT and SIGTERM while a library that handles them itself runs; deliver them when it returns.

    ansible-runner replaces both handlers with its own (and never puts Kiln's
    back) unless it is given a cancel callback. Given the callback this yields,
    it stops its playbook cleanly when a signal arrives; on leaving the block
    the signal reaches the handlers that were there before, so Ctrl-C and
    SIGTERM still stop the bake.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    received: list[int] = []
    # A signal this process ignores (SIGINT under nohup) stays ignored.
    previous = {signum: handler for signum in (signal.SIGINT, signal.SIGTERM)
                if (handler := signal.getsignal(signum)) is not signal.SIG_IGN}

    def note(signum: int, _frame: object) -> None:
        received.append(signum)

    for signum in previous:
        signal.signal(signum, note)
    try:
        yield lambda: bool(received)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if received:
            signal.raise_signal(received[0])


@contextlib.contextmanager
def short_tmpdir(prefix: str = "kiln-") -> Iterator[Path]:
    """A private temporary folder with a short path, removed on exit.

    Tools put Unix sockets in their TMPDIR (Packer's plugins, SSH control
    masters), and a socket path may not exceed 108 bytes.
    """
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def mount_points() -> list[str]:
    """Every mount point on this machine now."""
    return [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]


def remove_tree(folder: Path) -> bool:
    """Remove a scratch folder, never through a mount point.

    A chroot build mounts this machine's ``/dev`` and ``/sys`` inside its scratch
    folder: whatever is still mounted below ``folder`` is detached first (lazily),
    and if anything stays mounted the folder is left for the janitor. True when removed.
    """
    import shutil

    inside = str(folder) + "/"
    for point in sorted((m for m in mount_points() if m.startswith(inside)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True, stdin=subprocess.DEVNULL)
    if any(m.startswith(inside) or m == str(folder) for m in mount_points()):
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return True
