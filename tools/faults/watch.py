"""Following a running bake: its output lines and every process it started, even those that left its group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from pipeline.machine import Proc, processes
from tools.faults.cases import Case


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


def carrying(entry: str, table: dict[int, Proc]) -> list[Proc]:
    """Live processes whose environment holds ``entry`` (``NAME=value``).

    Every process a bake starts inherits its environment: marked with the suite's
    private TMPDIR, even one that left the tree between two polls is found.
    """
    wanted = entry.encode()
    found = []
    for p in table.values():
        with contextlib.suppress(OSError):
            if p.state != "Z" and p.pid != os.getpid() and \
                    wanted in Path(f"/proc/{p.pid}/environ").read_bytes().split(b"\0"):
                found.append(p)
    return found


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

    def survivors(self, mark: str = "", spare: Iterable[int] = ()) -> list[Proc]:
        """Processes the bake started that are still alive (zombies aside): every one seen in its tree, every
        one whose environment carries ``mark``, and, once the bake has exited, every process still below this
        one (their subreaper) but ``spare`` and what runs below those."""
        table = processes()
        found = {(p.pid, p.start): p for p in carrying(mark, table)} if mark else {}
        if self.proc.poll() is not None:
            reap(table)
            table = processes()
            spared = set(spare) | descendants(-1, table, spare)
            found |= {(table[pid].pid, table[pid].start): table[pid]
                      for pid in descendants(os.getpid(), table) - spared if table[pid].state != "Z"}
        found |= {(pid, start): p for (pid, start), p in self.seen.items()
                  if pid in table and table[pid].start == start and table[pid].state != "Z"}
        return list(found.values())

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
        if case.phase in ("build", "build idempotence"):
            words = "converging" if case.phase == "build" else "checking idempotence"
            return watch.has_line(image, "build:", words) and any("ansible-playbook" in c for c in cmds)
        if case.phase == "verify boot":
            return (watch.has_line(image, ": verify …") and not watch.has_line(image, "VM up")
                    and any("/runs/" in c for c in qemus))
        if case.phase == "specs":
            return watch.has_line(image, "running specs") and any("pytest" in c for c in cmds)
        if case.phase == "publish":
            return watch.has_line(f"{case.image}: holding before record")
        raise ValueError(case.phase)

    return ready
