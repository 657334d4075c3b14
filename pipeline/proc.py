"""Running external tools: plan (argv, env, cwd) apart from execution.

Every child runs in its own process group, so an interrupt kills the tool and
everything it started (Packer's QEMU, Ansible's SSH); output goes to a log file,
never to the terminal unless the caller asks to stream it. No tool runs for
ever: one still running after ``KILN_TOOL_SECONDS`` (default 3 h) — a Packer
build, mmdebstrap, the specs' pytest hung on a guest that stopped answering — is
stopped like an interrupted one and fails in one line naming the variable, so
a hung bake releases its lease instead of renewing it for good.
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

TOOL_ENV = "KILN_TOOL_SECONDS"
DEFAULT_TOOL_SECONDS = 3 * 3600.0  # the longest a real build takes under TCG, with room; the weekly job has 6 h


def tool_seconds(env: Mapping[str, str] | None = None) -> float:
    """How long one external tool may run: ``KILN_TOOL_SECONDS``, else 3 h."""
    return float((os.environ if env is None else env).get(TOOL_ENV) or DEFAULT_TOOL_SECONDS)


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
    outlives the caller; so it is when it outlives ``tool_seconds()``
    (CommandFailed, whatever ``check`` says).
    """
    limit = tool_seconds()
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
        expired = threading.Event()
        timer = threading.Timer(limit, lambda: (expired.set(), _kill_group(proc, grace=10.0)))
        timer.daemon = True
        timer.start()
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
        finally:
            timer.cancel()
        # Tools may leave children behind in their group (ssh control masters).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if log:
            out.close()
    result = Result(inv.argv, proc.returncode, time.monotonic() - start, log)
    if expired.is_set():
        raise CommandFailed(f"{what or Path(inv.argv[0]).name} did not finish within {limit:g} s ({TOOL_ENV}): "
                            "stopped", log=log, hint=f"see its log; {TOOL_ENV} sets how long one tool may run")
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
