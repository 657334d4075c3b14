"""Publish pending: images whose channels the catalog moved and the target has not yet mirrored.

The catalog is the truth, and SSM is derived from it. Between a channel move in
the catalog and the parameters deployers read lie faults a single call cannot
undo: a publish that failed (SSM throttled in the second region), a process
killed in between (Jenkins' SIGKILL after its SIGTERM). So a move on a target
that mirrors channels is marked pending *in the same transaction* as the move,
and the mark goes only once every region's parameters were put where the
catalog says — by the same command, by the next command that publishes that
image, or by ``invoke catalog.reconcile``. Each mark carries a token: a publish
clears only the marks it read before it read the catalog, so a move made
meanwhile keeps its own mark until its own publish.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime


def mark(db: sqlite3.Connection, names: Iterable[str], target: str, reason: str) -> None:
    """``names``' channels moved and ``target`` must mirror them (a new token each time)."""
    at = datetime.now(UTC).isoformat(timespec="seconds")
    for name in sorted(set(names)):
        db.execute("INSERT INTO pending VALUES (?, ?, ?, ?, ?) ON CONFLICT (name, target) DO UPDATE SET "
                   "since = excluded.since, token = excluded.token, reason = excluded.reason",
                   (name, target, at, uuid.uuid4().hex, reason))


def marks(db: sqlite3.Connection, target: str) -> dict[str, str]:
    """Every image pending on ``target``, with its mark's token."""
    return {n: t for n, t in db.execute("SELECT name, token FROM pending WHERE target=? ORDER BY name", (target,))}


def clear(db: sqlite3.Connection, target: str, seen: Mapping[str, str]) -> None:
    """Remove the marks that were ``seen`` (name → token) and not replaced since."""
    for name, token in seen.items():
        db.execute("DELETE FROM pending WHERE name=? AND target=? AND token=?", (name, target, token))
