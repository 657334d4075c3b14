import os
import time

import pytest

from pipeline import proc
from pipeline.errors import CommandFailed, ToolMissing


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split()[2] != "Z"


def test_run_logs_and_returns(tmp_path):
    log = tmp_path / "x.log"
    result = proc.run(proc.Invocation(("sh", "-c", "echo hello; echo oops >&2; exit 3")), log, check=False)
    assert result.returncode == 3
    text = log.read_text()
    assert text.startswith("$ sh -c") and "hello" in text and "oops" in text


def test_run_check_raises_with_log(tmp_path):
    with pytest.raises(CommandFailed) as err:
        proc.run(proc.Invocation(("false",)), tmp_path / "f.log", what="the thing")
    assert "the thing failed (exit 1)" in err.value.oneline()
    assert str(tmp_path / "f.log") in err.value.oneline()


def test_env_is_added(tmp_path):
    log = tmp_path / "e.log"
    proc.run(proc.Invocation(("sh", "-c", "echo $KILN_X"), env={"KILN_X": "42"}), log)
    assert "42" in log.read_text()


def test_tick_reports_progress(tmp_path):
    ticks: list[float] = []
    proc.run(proc.Invocation(("sleep", "0.5")), tmp_path / "t.log", tick=ticks.append, tick_every=0.1)
    assert len(ticks) >= 2 and ticks == sorted(ticks)


def test_interrupt_kills_the_whole_group(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    script = f"sleep 60 & echo $! > {pidfile}; wait"

    def interrupt(_elapsed: float) -> None:
        if pidfile.exists() and pidfile.read_text().strip():
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        proc.run(proc.Invocation(("sh", "-c", script)), tmp_path / "i.log", tick=interrupt, tick_every=0.1)
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild)


def test_background_is_stopped_on_exit(tmp_path):
    with proc.background(proc.Invocation(("sleep", "60")), tmp_path / "b.log") as child:
        pid = child.pid
        assert alive(pid)
    assert not alive(pid)


def test_capture(tmp_path):
    assert proc.capture(["echo", "hi"]) == "hi\n"
    with pytest.raises(CommandFailed, match="not found"):
        proc.capture(["no-such-tool-kiln"])
    with pytest.raises(CommandFailed, match="boom"):
        proc.capture(["sh", "-c", "echo boom >&2; exit 1"])


def fake_tool(tmp_path, output: str, code: int = 0) -> str:
    tool = tmp_path / "tool"
    tool.write_text(f"#!/bin/sh\necho '{output}'\nexit {code}\n")
    tool.chmod(0o755)
    return str(tool)


@pytest.mark.parametrize(("output", "found"), [
    ("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)", (7, 2, 22)),
    ("mmdebstrap 1.3.5", (1, 3, 5)),
    ("mmdebstrap 1.0", (1, 0, 0)),
])
def test_require_version_reads_the_version(tmp_path, output, found):
    assert proc.require_version([fake_tool(tmp_path, output), "--version"], "t", (1, 0), hint="h") == found


def test_require_version_names_a_too_old_tool_and_how_to_fix_it(tmp_path):
    with pytest.raises(ToolMissing) as err:
        proc.require_version([fake_tool(tmp_path, "QEMU emulator version 4.2.1"), "--version"], "QEMU", (5, 2),
                             hint="apt-get install qemu-system-x86")
    assert err.value.oneline() == "QEMU 4.2.1 is too old (Kiln needs 5.2 or newer) — apt-get install qemu-system-x86"


def test_require_version_when_the_tool_fails_or_prints_no_version(tmp_path):
    with pytest.raises(ToolMissing, match="failed"):
        proc.require_version([fake_tool(tmp_path, "boom", code=3)], "t", (1, 0), hint="h")
    with pytest.raises(ToolMissing, match="cannot read a version"):
        proc.require_version([fake_tool(tmp_path, "no digits here")], "t", (1, 0), hint="h")
    with pytest.raises(ToolMissing, match="not found"):
        proc.require_version([str(tmp_path / "absent")], "t", (1, 0), hint="h")


class Stopped(Exception):
    pass


def test_deferred_signals_hold_a_signal_until_the_block_ends_then_deliver_it():
    import signal

    def stop(_signum, _frame):
        raise Stopped

    previous = signal.signal(signal.SIGTERM, stop)
    sigint = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(Stopped):
            with proc.deferred_signals() as cancelled:
                assert cancelled() is False
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
                assert cancelled() is True  # the library sees it and winds down ...
            pytest.fail("the held signal was not delivered")  # pragma: no cover
        assert signal.getsignal(signal.SIGTERM) is stop  # ... and Kiln's handler is back
        assert signal.getsignal(signal.SIGINT) is sigint
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_deferred_signals_without_a_signal_change_nothing():
    import signal

    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    with proc.deferred_signals() as cancelled:
        pass
    assert cancelled() is False
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_an_ignored_signal_stays_ignored():
    import signal

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with proc.deferred_signals() as cancelled:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            assert cancelled() is False
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_tool_that_outlives_kiln_tool_seconds_is_stopped_and_fails_in_one_line(tmp_path, monkeypatch):
    """A tool that hangs (a Packer build or the specs waiting on a guest that stopped answering) would keep its
    bake's lease renewed for ever: it is stopped with its whole group, whatever ``check`` says."""
    monkeypatch.setenv("KILN_TOOL_SECONDS", "1")
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    with pytest.raises(CommandFailed) as err:
        proc.run(proc.Invocation(("sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait")), tmp_path / "h.log",
                 check=False, what="packer build")
    assert time.monotonic() - started < 20
    assert "packer build did not finish within 1 s (KILN_TOOL_SECONDS): stopped" in err.value.oneline()
    assert "KILN_TOOL_SECONDS" in err.value.hint
    child, deadline = int(pidfile.read_text()), time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:  # SIGKILL is sent; its death lands a moment later
        time.sleep(0.05)
    assert not alive(child)  # the tool's children went with it


def test_a_tool_within_kiln_tool_seconds_is_not_stopped(tmp_path, monkeypatch):
    monkeypatch.setenv("KILN_TOOL_SECONDS", "30")
    assert proc.run(proc.Invocation(("true",)), tmp_path / "t.log").returncode == 0
