"""One write transaction on a SQLite connection: what the catalog file and its lease file both need."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def transaction(conn: sqlite3.Connection, change: Callable[[sqlite3.Connection], T]) -> T:
    """``change`` in one write transaction of ``conn``, taken at once (``BEGIN IMMEDIATE``: two writers never
    deadlock upgrading a read), rolled back on any exception, an interrupt included."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = change(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result
