"""The scheduler of ``bake --jobs`` with stand-in bakes (small Python processes): output, order, exit codes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.bake.lease import LeaseHeld
from pipeline.bake.schedule import Job, Outcome, Scheduler, check, rows_of
from pipeline.errors import KilnError


def stand_in(script: str):
    """A spawn whose bake of IMAGE runs ``script`` (IMAGE and the rows file in sys.argv)."""

    def spawn(image: str, rows: Path) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-c", script, image, str(rows)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, encoding="utf-8", errors="replace", start_new_session=True)

    return spawn


def test_a_bake_that_prints_bytes_that_are_not_utf8_is_read_to_its_end(tmp_path):
    said: list[str] = []
    script = ("import sys; sys.stdout.buffer.write(b'\\xff\\xfe broken\\n'); "
              "[print('line', n) for n in range(20000)]")
    job = Job("app", (), tmp_path / "app.json")
    Scheduler([job], limit=1, spawn=stand_in(script), say=said.append).run()
    assert job.state == "done" and len(said) == 20001 and said[-1] == "[app] line 19999"


def test_parents_first_and_a_failure_skips_only_its_descendants(tmp_path):
    order: list[str] = []
    script = ("import sys, json; image, rows = sys.argv[1:]; print('start', image); "
              "open(rows, 'w').write(json.dumps([{'image': image, 'version': '1', 'status': 'verified', "
              "'seconds': 1.0, 'artifact': 'x'}])); sys.exit(1 if image == 'twig' else 0)")
    jobs = [Job("trunk", (), tmp_path / "t.json"), Job("branch", ("trunk",), tmp_path / "b.json"),
            Job("twig", ("trunk",), tmp_path / "w.json"), Job("leaf", ("twig",), tmp_path / "l.json")]
    outcome = Scheduler(jobs, limit=2, spawn=stand_in(script), say=order.append).run()
    assert order.index("[trunk] start trunk") < min(order.index("[branch] start branch"),
                                                    order.index("[twig] start twig"))
    assert {j.image: j.state for j in jobs} == {"trunk": "done", "branch": "done", "twig": "failed",
                                                "leaf": "skipped"}
    assert [(r.image, r.status) for r in outcome.rows][-1] == ("leaf", "skipped")
    with pytest.raises(KilnError, match=r"2 image\(s\) not baked: twig \(exit 1: no error line\); leaf \(skipped"):
        check(outcome)


def test_only_bakes_told_not_to_wait_make_exit_75(tmp_path):
    busy = Job("app", (), tmp_path / "a.json", state="failed", code=75, last_error="exit 75: kiln: error: held")
    with pytest.raises(LeaseHeld):
        check(Outcome([busy, Job("leaf", ("app",), tmp_path / "l.json", state="skipped")]))
    broken = Job("base", (), tmp_path / "b.json", state="failed", code=1)
    with pytest.raises(KilnError) as err:
        check(Outcome([busy, broken]))
    assert not isinstance(err.value, LeaseHeld)


def test_a_job_that_ended_before_baking_still_has_its_row(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([]))
    job = Job("app", (), tmp_path / "a.json", state="failed", code=75, last_error="exit 75: held")
    assert [(r.image, r.status, r.artifact) for r in rows_of(job)] == [("app", "failed", "exit 75: held")]


def test_an_interrupt_stops_the_running_bakes_with_the_same_signal(tmp_path):
    script = ("import signal, sys, time\n"
              "def bye(n, f): print('got', n, flush=True); sys.exit(130)\n"
              "signal.signal(signal.SIGINT, bye)\nprint('ready', flush=True)\ntime.sleep(60)\n")
    said: list[str] = []
    jobs = [Job("app", (), tmp_path / "a.json"), Job("worker", (), tmp_path / "w.json"),
            Job("later", ("app",), tmp_path / "l.json")]
    scheduler = Scheduler(jobs, limit=2, spawn=stand_in(script), say=said.append)

    def interrupt_once_both_run() -> None:
        if sum(line.endswith("ready") for line in said) == 2:
            raise KeyboardInterrupt

    scheduler.reap = interrupt_once_both_run  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt) as stopped:
        scheduler.run()
    assert stopped.value.where == "during parallel bakes (stopped: app, worker)"  # type: ignore[attr-defined]
    assert f"[app] got {int(signal.SIGINT)}" in said and f"[worker] got {int(signal.SIGINT)}" in said
    assert [j.state for j in jobs] == ["stopped", "stopped", "skipped"]
    assert all(j.proc is None or j.proc.poll() is not None for j in jobs)
