"""Bake leases: which machine is building an image for a bake key on a target, in the catalog's own store.

Two machines sharing a catalog (two Jenkins controllers, a laptop and
Jenkins) must never build the same image twice. Before building, a bake
claims the lease on ``(image, bake key, target)``; a claim succeeds when no
lease exists or the one there has expired (its holder stopped renewing it:
the machine died). The holder renews it while it works and releases it at
the end. Like Terraform's S3 lock file, there is no lock server: the lease
lives where the catalog does, written the way the catalog is written
(``SqliteLeases``: a transaction on a SQLite file beside the catalog file;
``s3_leases``: one object per lease beside the document, written with S3
conditional writes).

Expiry never rests on one machine's clock alone. The S3 store judges it by
S3's clock; a SQLite file has no clock of its own, so a lease there counts
as expired only after a skew margin has passed too.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TypeVar

from pipeline.catalog.sqlite_tx import transaction
from pipeline.errors import KilnError

T = TypeVar("T")
SKEW = 60.0  # seconds a SQLite lease outlives its expiry (the clocks of machines sharing a file may differ)


@dataclass(frozen=True)
class Lease:
    """Who builds ``image`` for bake ``key`` on ``target``, since when, and until when (store time)."""

    image: str
    key: str
    target: str
    actor: str
    host: str
    run_id: str
    taken_at: float = 0.0
    expires_at: float = 0.0

    def same(self, other: Lease) -> bool:
        """The same lease (image, key, target)."""
        return (self.image, self.key, self.target) == (other.image, other.key, other.target)

    def ours(self, other: Lease) -> bool:
        """``other`` is this same lease held by this same run."""
        return self.same(other) and self.run_id == other.run_id

    @property
    def subject(self) -> str:
        """``app (key 1a2b3c4d5e6f) on local``."""
        return f"{self.image} (key {self.key.split(':', 1)[-1][:12]}) on {self.target}"

    @property
    def holder(self) -> str:
        """``jenkins#12 on agent-3 (run …)``."""
        return f"{self.actor} on {self.host} (run {self.run_id})"

    def since(self) -> str:
        """When it was taken, in UTC."""
        return datetime.fromtimestamp(self.taken_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LeaseLost(KilnError):
    """The lease this run held expired and another holder took it."""


class LeaseBook(Protocol):
    """A catalog store's leases: ``claim`` takes one (or returns the live holder's), ``renew`` extends it."""

    def claim(self, want: Lease, ttl: float) -> tuple[Lease, Lease | None]:
        """The lease now: ``want`` (timed) when taken, else the live holder's; and the expired lease replaced."""
        ...

    def renew(self, lease: Lease, ttl: float) -> Lease:
        """``lease`` extended by ``ttl``; LeaseLost when another holder has it now."""
        ...

    def release(self, lease: Lease) -> None:
        """Give ``lease`` up (nothing happens when it is not held by its run any more)."""
        ...

    def live(self) -> list[Lease]:
        """Every lease not expired."""
        ...


_DDL = """CREATE TABLE IF NOT EXISTS leases (
    image TEXT NOT NULL, key TEXT NOT NULL, target TEXT NOT NULL, actor TEXT NOT NULL, host TEXT NOT NULL,
    run_id TEXT NOT NULL, taken_at REAL NOT NULL, expires_at REAL NOT NULL, PRIMARY KEY (image, key, target))"""
_COLUMNS = "image, key, target, actor, host, run_id, taken_at, expires_at"


class SqliteLeases:
    """Leases in a SQLite file beside the catalog file (``catalog.db`` → ``catalog.db.leases``), each change
    one ``BEGIN IMMEDIATE`` transaction.

    A file of their own: the catalog's content, bytes and format stay exactly
    as they were (a bake that stops on bad input leaves the catalog untouched,
    a Kiln that predates leases reads it as before). Every call opens its own
    connection, so the thread that renews a lease never shares one with the
    bake."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time, skew: float = SKEW) -> None:
        self.path = path
        self.clock = clock
        self.skew = skew

    @staticmethod
    def beside(catalog: Path) -> Path:
        """The lease file of the catalog file ``catalog`` (followed through a symlink: bakes that share the
        catalog share its leases)."""
        real = catalog.resolve()
        return real.with_name(real.name + ".leases")

    def _write(self, change: Callable[[sqlite3.Connection], T]) -> T:
        with contextlib.closing(sqlite3.connect(self.path, timeout=120, isolation_level=None)) as db:
            db.execute("PRAGMA busy_timeout=120000")
            db.execute("PRAGMA journal_mode=WAL")
            return transaction(db, change)

    def _find(self, db: sqlite3.Connection, want: Lease) -> Lease | None:
        db.execute(_DDL)
        row = db.execute(f"SELECT {_COLUMNS} FROM leases WHERE image=? AND key=? AND target=?",
                         (want.image, want.key, want.target)).fetchone()
        return Lease(*row) if row else None

    def _expired(self, lease: Lease, ttl: float) -> bool:
        return self.clock() > lease.expires_at + min(self.skew, ttl)

    def _put(self, db: sqlite3.Connection, lease: Lease) -> Lease:
        db.execute(f"INSERT OR REPLACE INTO leases ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
                   (lease.image, lease.key, lease.target, lease.actor, lease.host, lease.run_id, lease.taken_at,
                    lease.expires_at))
        return lease

    def claim(self, want: Lease, ttl: float) -> tuple[Lease, Lease | None]:
        """Take the row if it is free, this run's, or expired past the skew margin."""

        def change(db: sqlite3.Connection) -> tuple[Lease, Lease | None]:
            there = self._find(db, want)
            if there is not None and not there.ours(want) and not self._expired(there, ttl):
                return there, None
            now = self.clock()
            mine = self._put(db, replace(want, taken_at=now, expires_at=now + ttl))
            return mine, there if there is not None and not there.ours(want) else None

        return self._write(change)

    def renew(self, lease: Lease, ttl: float) -> Lease:
        """Extend the row while it is this run's."""

        def change(db: sqlite3.Connection) -> Lease:
            there = self._find(db, lease)
            if there is None or not there.ours(lease):
                raise LeaseLost(f"lost the lease on {lease.subject}"
                                + (f" to {there.holder}" if there else " (it was removed)"))
            return self._put(db, replace(there, expires_at=self.clock() + ttl))

        return self._write(change)

    def release(self, lease: Lease) -> None:
        """Delete the row if it is this run's."""

        def change(db: sqlite3.Connection) -> None:
            db.execute(_DDL)
            db.execute("DELETE FROM leases WHERE image=? AND key=? AND target=? AND run_id=?",
                       (lease.image, lease.key, lease.target, lease.run_id))

        self._write(change)

    def live(self) -> list[Lease]:
        """Every row not expired past the skew margin."""
        if not self.path.exists():
            return []
        with contextlib.closing(sqlite3.connect(self.path, timeout=120)) as db:
            if not db.execute("SELECT 1 FROM sqlite_master WHERE name='leases'").fetchone():
                return []
            rows = db.execute(f"SELECT {_COLUMNS} FROM leases ORDER BY image, target, taken_at").fetchall()
        leases = [Lease(*row) for row in rows]
        return [lease for lease in leases if not self._expired(lease, lease.expires_at - lease.taken_at)]
