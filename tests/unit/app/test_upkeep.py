"""The janitor's liveness: a run holding a lease or an image lock is never touched, however old its run id."""

import io
import socket

import pytest

from pipeline.app import upkeep
from pipeline.bake import locks
from pipeline.catalog import Catalog, Lease
from pipeline.progress import Reporter
from pipeline.targets.local import upkeep as local_upkeep
from pipeline.upkeep import janitor

LOCKED, LEASED, DEAD = "20261101T020000Z-0a1d0d", "20261101T030000Z-0b2e0e", "20261101T040000Z-0c3f0f"


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("KILN_HOME", str(home))
    monkeypatch.setenv("KILN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(local_upkeep, "tmp_places", lambda: [tmp_path / "tmp"])  # never this machine's /tmp
    for run in (LOCKED, LEASED, DEAD):
        (home / "runs" / f"{run}-app").mkdir(parents=True)
    return home


def test_older_than_0_removes_only_the_dead_run(home):
    with Catalog.open(home / "catalog.db") as cat:
        cat.leases.claim(Lease(image="base", key="k", target="local", actor="ci-b", host="b", run_id=LEASED), 300)
    with locks.image_lock(home / "locks", "app", LOCKED, Reporter(stream=io.StringIO())):
        lines = upkeep.sweep(target="local", older_than="0").lines
    assert [(home / "runs" / f"{r}-app").exists() for r in (LOCKED, LEASED, DEAD)] == [True, True, False]
    assert sum("is alive: it holds a lease or lock" in line for line in lines) == 2, lines
    assert any(line.startswith("removed ") and DEAD in line for line in lines), lines


def test_once_the_lock_is_released_its_run_is_judged_by_age_again(home):
    with locks.image_lock(home / "locks", "app", LOCKED, Reporter(stream=io.StringIO())):
        pass
    upkeep.sweep(target="local", older_than="0")
    assert not (home / "runs" / f"{LOCKED}-app").exists()


def test_a_lease_this_machine_left_unreleased_by_a_killed_run_does_not_keep_it_alive(home):
    """SIGKILL: the kernel dropped the run's image lock (which still names it) but its lease is live until it
    expires. Here that lease proves nothing; a lease of this machine with no trace in this home's locks (a
    bake in another KILN_HOME) and another machine's lease still keep their runs."""
    here = socket.gethostname()
    with Catalog.open(home / "catalog.db") as cat:
        for image, run, host in (("app", DEAD, here), ("base", LEASED, here), ("db", LOCKED, "elsewhere")):
            cat.leases.claim(Lease(image=image, key="k", target="local", actor="ci", host=host, run_id=run), 300)
    with locks.image_lock(home / "locks", "app", DEAD, Reporter(stream=io.StringIO())):
        pass  # the file keeps DEAD's id; nobody holds it
    upkeep.sweep(target="local", older_than="0")
    assert [(home / "runs" / f"{r}-app").exists() for r in (LOCKED, LEASED, DEAD)] == [True, True, False]


def test_live_runs_by_leases_and_locks():
    lease = Lease(image="app", key="k", target="aws", actor="ci", host="me", run_id=DEAD)
    assert janitor.live_runs([lease], {DEAD: False}, "me") == set()
    assert janitor.live_runs([lease], {DEAD: False}, "other") == {DEAD}  # another machine's run: its lease counts
    assert janitor.live_runs([lease], {}, "me") == {DEAD}
    assert janitor.live_runs([], {LOCKED: True, DEAD: False}, "me") == {LOCKED}
