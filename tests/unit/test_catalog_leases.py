"""Bake leases in a SQLite catalog: one holder at a time, expiry with a skew margin, renewal, release."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pipeline.catalog import Catalog, Lease, LeaseLost
from pipeline.catalog.leases import SqliteLeases

KEY = "sha256:" + "ab" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def lease(run_id: str, image: str = "app", key: str = KEY) -> Lease:
    return Lease(image=image, key=key, target="local", actor=f"ci-{run_id}", host="agent", run_id=run_id)


@pytest.fixture
def book(tmp_path: Path) -> tuple[SqliteLeases, Clock]:
    Catalog.open(tmp_path / "catalog.db").close()
    clock = Clock()
    return SqliteLeases(SqliteLeases.beside(tmp_path / "catalog.db"), clock=clock, skew=30), clock


def test_one_holder_at_a_time_and_the_second_sees_who(book):
    leases, clock = book
    mine, dead = leases.claim(lease("r1"), ttl=60)
    assert mine.ours(lease("r1")) and dead is None and mine.expires_at == clock.now + 60
    theirs, dead = leases.claim(lease("r2"), ttl=60)
    assert theirs.ours(lease("r1")) and dead is None
    assert theirs.holder == "ci-r1 on agent (run r1)"
    # Another image, or the same image for another bake key, is a separate lease.
    assert leases.claim(lease("r2", image="base"), ttl=60)[0].run_id == "r2"
    assert leases.claim(lease("r2", key="sha256:" + "cd" * 32), ttl=60)[0].run_id == "r2"
    assert [le.run_id for le in leases.live()] == ["r1", "r2", "r2"]


def test_an_expired_lease_is_taken_over_only_after_the_skew_margin(book):
    leases, clock = book
    leases.claim(lease("r1"), ttl=60)
    clock.now += 60 + 29  # expired, but within the margin for another machine's clock
    assert leases.claim(lease("r2"), ttl=60)[0].run_id == "r1"
    clock.now += 2
    mine, dead = leases.claim(lease("r2"), ttl=60)
    assert mine.run_id == "r2" and dead is not None and dead.run_id == "r1"
    with pytest.raises(LeaseLost, match=r"lost the lease on app \(key abababababab\) on local to ci-r2"):
        leases.renew(lease("r1"), ttl=60)


def test_renewal_keeps_a_working_holder_and_release_frees_it(book):
    leases, clock = book
    mine, _ = leases.claim(lease("r1"), ttl=60)
    for _ in range(5):
        clock.now += 50
        mine = leases.renew(mine, ttl=60)
        assert leases.claim(lease("r2"), ttl=60)[0].run_id == "r1"
    assert mine.expires_at == clock.now + 60
    leases.release(lease("r2"))  # not the holder: nothing happens
    assert [le.run_id for le in leases.live()] == ["r1"]
    leases.release(mine)
    assert leases.live() == []
    assert leases.claim(lease("r2"), ttl=60)[0].run_id == "r2"
    with pytest.raises(LeaseLost, match="it was removed"):
        leases.renew(lease("r3", image="worker"), ttl=60)


def test_leases_live_beside_the_catalog_whose_bytes_they_never_touch(tmp_path):
    with Catalog.open(tmp_path / "catalog.db") as cat:
        assert cat.leases.live() == []
        before = {p.name: p.read_bytes() for p in tmp_path.glob("catalog.db*")}
        got, _ = cat.leases.claim(lease("r1"), ttl=60)
        cat.leases.release(got)
        assert got.run_id == "r1" and {p.name: p.read_bytes() for p in tmp_path.glob("catalog.db*")
                                       if not p.name.startswith("catalog.db.leases")} == before
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "catalog.db").symlink_to(tmp_path / "catalog.db")
    assert SqliteLeases.beside(tmp_path / "shared" / "catalog.db") == tmp_path / "catalog.db.leases"


def test_many_claimers_at_once_get_exactly_one_lease(tmp_path):
    Catalog.open(tmp_path / "catalog.db").close()
    winners: list[str] = []
    start = threading.Barrier(12)

    def claim(n: int) -> None:
        book = SqliteLeases(SqliteLeases.beside(tmp_path / "catalog.db"))
        start.wait()
        got, _ = book.claim(lease(f"r{n}"), ttl=60)
        if got.run_id == f"r{n}":
            winners.append(got.run_id)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
