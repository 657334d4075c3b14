import os
import time

import pytest

from pipeline import proc
from pipeline.errors import CommandFailed


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
