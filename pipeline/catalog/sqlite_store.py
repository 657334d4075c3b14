"""The catalog in a SQLite file: Kiln's local store, and the aws target's when no bucket is set.

Each change is one transaction (``BEGIN IMMEDIATE``), so concurrent writers —
parallel bakes, several processes on one machine — queue instead of losing
updates, and WAL journaling with full sync keeps the file whole if a writer is
killed mid-write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pipeline.catalog import schema
from pipeline.catalog.leases import SqliteLeases
from pipeline.catalog.sqlite_tx import transaction

T = TypeVar("T")


class SqliteStore:
    """A ``CatalogStore`` on one SQLite file (or an in-memory database)."""

    def __init__(self, conn: sqlite3.Connection, location: str) -> None:
        self._conn = conn
        self.location = location
        self.leases = SqliteLeases(SqliteLeases.beside(Path(location)))

    @classmethod
    def open(cls, path: Path | str, *, create: bool = True) -> SqliteStore:
        """The catalog file at ``path``; CatalogError when it is missing (and ``create`` is false) or unreadable."""
        return cls(schema.connect(Path(path), create=create), str(path))

    def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Answer ``query`` from the file as it is now."""
        return query(self._conn)

    def write(self, change: Callable[[sqlite3.Connection], T]) -> T:
        """Apply ``change`` in one transaction; rolled back on any exception."""
        return transaction(self._conn, change)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
