"""Two machines sharing one SQLite catalog (two processes, two KILN_HOMEs) never bake one image twice.

The bakes use the fake target (``test_fake_target``), whose build is a text
file but whose gate is the real one, so each bake takes seconds. The lease
is the only thing the processes share: separate homes mean separate local
locks, so without it both would bake.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.app import baking
from pipeline.bake.inputs import Inputs
from pipeline.bake.lease import Keeper, LeaseHeld
from pipeline.bake.plan import BAKE, Decision
from pipeline.catalog import Artifact, Catalog, LeaseLost
from pipeline.catalog.leases import SqliteLeases
from pipeline.progress import Reporter
from tests.conftest import ROOT
from tests.unit.test_fake_target import project  # noqa: F401 — the fixture

__all__ = ["project"]


def machine(tmp_path: Path, name: str, image: str, *flags: str, build_seconds: float = 0,
            lease_seconds: float = 3) -> subprocess.Popen[str]:
    env = {**os.environ, "KILN_HOME": str(tmp_path / f"home-{name}"), "KILN_ACTOR": f"ci-{name}",
           "KILN_CATALOG": str(tmp_path / "shared" / "catalog.db"), "FAKE_BUILD_SECONDS": str(build_seconds),
           "KILN_LEASE_SECONDS": str(lease_seconds), "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "tests.unit.fake_baker", image, *flags], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def shared_leases(tmp_path: Path) -> SqliteLeases:
    return SqliteLeases(SqliteLeases.beside(tmp_path / "shared" / "catalog.db"))


def wait_for_lease(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and holder.poll() is None:
        if (tmp_path / "shared" / "catalog.db").exists() and shared_leases(tmp_path).live():
            return
        time.sleep(0.1)
    raise AssertionError(f"no lease was taken: {holder.communicate()[0] if holder.poll() is not None else ''}")


def wait_for_record(tmp_path: Path, holder: subprocess.Popen[str], image: str) -> None:
    """Until the holder's bake of ``image`` is recorded (building): past its lease, into its build."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and holder.poll() is None:
        if (tmp_path / "shared" / "catalog.db").exists() and "building" in statuses(tmp_path, image):
            return
        time.sleep(0.1)
    raise AssertionError(f"no bake was recorded: {holder.communicate()[0] if holder.poll() is not None else ''}")


def statuses(tmp_path: Path, image: str) -> list[str]:
    with Catalog.open(tmp_path / "shared" / "catalog.db", create=False) as cat:
        return [r.status for r in cat.versions(image)]


def test_the_second_machine_waits_for_the_holder_then_finds_the_image_up_to_date(project, tmp_path):  # noqa: F811
    first = machine(tmp_path, "a", "trunk", build_seconds=4)
    wait_for_lease(tmp_path, first)
    second = machine(tmp_path, "b", "trunk")
    out_a, out_b = first.communicate(timeout=120)[0], second.communicate(timeout=120)[0]
    assert first.returncode == 0 and second.returncode == 0, out_a + out_b
    assert statuses(tmp_path, "trunk") == ["verified"]  # baked once, by a
    assert "trunk (key " in out_b and "is being baked by ci-a on" in out_b and "waiting for it" in out_b
    assert "up to date: trunk" in out_b and "verify" not in out_b
    assert shared_leases(tmp_path).live() == []  # released


def test_no_wait_exits_75_naming_the_holder(project, tmp_path):  # noqa: F811
    first = machine(tmp_path, "a", "trunk", build_seconds=4)
    wait_for_lease(tmp_path, first)
    second = machine(tmp_path, "b", "trunk", "--no-wait")
    out_b = second.communicate(timeout=120)[0]
    first.communicate(timeout=120)
    assert second.returncode == 75, out_b
    [line] = [ln for ln in out_b.splitlines() if ln.startswith("kiln:")]
    assert "trunk (key " in line and "is being baked by ci-a on" in line and "without --no-wait" in line
    assert statuses(tmp_path, "trunk") == ["verified"]


def test_a_killed_holders_lease_expires_and_is_taken_over(project, tmp_path):  # noqa: F811
    first = machine(tmp_path, "a", "trunk", build_seconds=120, lease_seconds=2)
    wait_for_record(tmp_path, first, "trunk")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    second = machine(tmp_path, "b", "trunk", lease_seconds=2)
    out_b = second.communicate(timeout=120)[0]
    assert second.returncode == 0, out_b
    assert "is being baked by ci-a on" in out_b and "took over the lease on trunk" in out_b
    # a's attempt stays as the SIGKILL left it (building); only b's was verified.
    assert sorted(statuses(tmp_path, "trunk")) == ["building", "verified"]


def test_a_lost_lease_stops_the_bake_before_its_next_step(tmp_path):
    Catalog.open(tmp_path / "catalog.db").close()
    keeper = Keeper("run-1", "local", ttl=0.3)
    decision = Decision("app", BAKE, ("never built",), inputs=Inputs({}, {"a": "1"}))
    lines: list[str] = []
    reporter = Reporter(stream=open(os.devnull, "w"))  # noqa: SIM115
    reporter.line = lines.append  # type: ignore[method-assign]
    with Catalog.open(tmp_path / "catalog.db") as cat, keeper.held(cat, reporter, lambda: decision) as got:
        assert got is decision
        [held] = cat.leases.live()
        keeper.check("build", "app", reporter)  # held: goes on
        cat.leases.release(held)  # as if another machine had taken it over
        deadline = time.monotonic() + 5
        while "app" not in keeper.lost and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(Exception, match=r"app: lost the lease on app .* stopped before record"):
            keeper.check("record", "app", reporter)
    assert any("stopping before the next step" in line for line in lines)


def test_a_waiter_gives_up_on_a_holder_that_renews_but_never_finishes(tmp_path):
    Catalog.open(tmp_path / "catalog.db").close()
    decision = Decision("app", BAKE, ("never built",), inputs=Inputs({}, {"a": "1"}))
    reporter = Reporter(stream=open(os.devnull, "w"))  # noqa: SIM115
    with Catalog.open(tmp_path / "catalog.db") as cat, Keeper("run-1", "local").held(cat, reporter, lambda: decision):
        waiter = Keeper("run-2", "local", ttl=1.5, patience=1.0)  # the holder's lease stays live throughout
        started = time.monotonic()
        with pytest.raises(LeaseHeld) as held, Catalog.open(tmp_path / "catalog.db") as other, \
                waiter.held(other, reporter, lambda: decision):
            pass
        assert time.monotonic() - started >= 1.0  # it did wait, as long as it was told
        assert held.value.exit_code == 75 and "(run run-1)" in held.value.message
        assert "is still being baked by" in held.value.message and "gave up after waiting 1 s" in held.value.message
        assert "KILN_WAIT_SECONDS" in (held.value.hint or "")


def test_held_leases_refuse_a_second_keeper_that_does_not_wait(tmp_path):
    Catalog.open(tmp_path / "catalog.db").close()
    decision = Decision("app", BAKE, ("never built",), inputs=Inputs({}, {"a": "1"}))
    reporter = Reporter(stream=open(os.devnull, "w"))  # noqa: SIM115
    with Catalog.open(tmp_path / "catalog.db") as cat, Keeper("run-1", "local").held(cat, reporter, lambda: decision):
        second = Keeper("run-2", "local", wait=False)
        with pytest.raises(LeaseHeld) as held, Catalog.open(tmp_path / "catalog.db") as other, \
                second.held(other, reporter, lambda: decision):
            pass
        assert held.value.exit_code == 75 and "(run run-1)" in held.value.message
    with Catalog.open(tmp_path / "catalog.db") as cat:
        assert cat.leases.live() == []


def test_a_lease_not_renewed_for_two_thirds_of_its_life_stops_the_bake(tmp_path):
    keeper = Keeper("run-1", "local", ttl=30)
    reporter = Reporter(stream=open(os.devnull, "w"))  # noqa: SIM115
    keeper.renewed["app"] = time.monotonic() - 19
    keeper.check("verify", "app", reporter)  # within two thirds: goes on
    keeper.renewed["app"] = time.monotonic() - 21
    with pytest.raises(LeaseLost, match=r"app: the lease could not be renewed for 21 s of its 30 s; stopped before "
                                        r"verify"):
        keeper.check("verify", "app", reporter)
    keeper.check("verify", "base", reporter)  # an image without a lease (up to date) is never stopped


def test_a_bake_that_lost_its_lease_leaves_the_record_to_the_new_holder(project, tmp_path):  # noqa: F811
    def lose(step: str, image: str, reporter: Reporter) -> None:
        if step == "verify":
            raise LeaseLost(f"{image}: lost the lease on {image} to someone else")

    with pytest.raises(LeaseLost):
        baking.bake("trunk", target="fake", hooks=(lose,))
    with Catalog.open(tmp_path / "home" / "catalog.db", create=False) as cat:
        [trunk] = cat.versions("trunk")
        assert trunk.status == "building"  # not failed: the new holder goes on with it
        assert cat.leases.live() == []


def test_no_wait_does_not_wait_for_a_bake_on_this_machine_either(project, tmp_path):  # noqa: F811
    locks = tmp_path / "home" / "locks"
    locks.mkdir(parents=True)
    with open(locks / "trunk.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(LeaseHeld, match="trunk: another bake of trunk is running on this machine"):
            baking.bake("trunk", target="fake", wait=False)


def stale_holder_writes(cat_a: Catalog, cat_b: Catalog, reporter: Reporter) -> tuple[str, str]:
    """A claims and starts the bake, stalls; its lease goes (as on expiry) and B takes it over and records its
    verdict; then A wakes and writes. Returns the version and A's refusal."""
    decision = Decision("app", BAKE, ("never built",), inputs=Inputs({}, {"a": "1"}))
    with Keeper("run-a", "local", ttl=600).held(cat_a, reporter, lambda: decision):
        version = cat_a.begin_bake(name="app", parent=None, fingerprint="sha256:" + "a" * 64, git_commit="c",
                                   git_dirty=False, run_id="run-a", log_dir="/a")
        [lease_a] = cat_a.leases.live()
        cat_a.leases.release(lease_a)  # A is paused past its expiry: B may take it
        with Keeper("run-b", "local", ttl=600).held(cat_b, reporter, lambda: decision):
            cat_b.resume("app", version, reason="taken over")
            cat_b.set_status("app", version, "verified")
        with pytest.raises(LeaseLost, match=r"app: the lease was taken over \(generation 2 now, this bake held "
                                            r"generation 1\); its catalog write was refused") as refused:
            cat_a.set_status("app", version, "failed")  # A's SSH to its VM timed out: its verdict
        for write in (lambda: cat_a.record_verification("app", version, spec_digest="d", ok=False, report=None),
                      lambda: cat_a.add_artifact("app", version, Artifact(target="local", id="x", path="/x"))):
            with pytest.raises(LeaseLost):
                write()
    return version, refused.value.message


def test_a_holder_that_wakes_after_a_takeover_cannot_write_its_verdict(tmp_path):
    reporter = Reporter(stream=open(os.devnull, "w"))  # noqa: SIM115
    with Catalog.open(tmp_path / "catalog.db") as cat_a, Catalog.open(tmp_path / "catalog.db") as cat_b:
        version, _ = stale_holder_writes(cat_a, cat_b, reporter)
        assert [h["to"] for h in cat_a.status_history("app", version)] == ["building", "verified"]
        assert cat_a.latest("app").version == version and cat_a.get("app", version).artifacts == ()
        cat_a.set_status("app", version, "revoked", reason="an operator, not a bake: never fenced")
