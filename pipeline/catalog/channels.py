"""Named channels, revoke and restore: the writes that change what deployers get.

Named channels (``staging``, ``prod``, any name) move only by ``promote`` and
``rollback``; each keeps a stack of assignments, so a rollback goes back one
step. Revoking a version takes it off every channel (each falls back to its
previous good assignment) and, with ``cascade``, revokes its descendants;
``restore`` undoes it. Every move that happens as a side effect is returned as
a ``Move`` for the user to read and for the target to publish.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence

from pipeline.catalog.lifecycle import move, parent_status
from pipeline.catalog.queries import all_channels, effective, image_id, stack, status
from pipeline.catalog.records import LATEST, Move, actor, check_channel, now_iso
from pipeline.errors import CatalogError, ConfigError


def event(db: sqlite3.Connection, name: str, channel: str, action: str, before: str | None, after: str | None,
          assigned: Sequence[str], reason: str | None = None) -> None:
    """One move of a named channel, with its stack of assignments after the move."""
    db.execute("INSERT INTO channel_events (name, channel, at, who, action, from_version, to_version, stack,"
               " reason) VALUES (?,?,?,?,?,?,?,?,?)",
               (name, channel, now_iso(), actor(), action, before, after, json.dumps(list(assigned)), reason))


def moves(db: sqlite3.Connection, before: Mapping[tuple[str, str], str | None], action: str,
          reason: str) -> list[Move]:
    """The channels that moved since ``before``; named ones get an event."""
    after = all_channels(db, {n for n, _ in before})
    found = []
    for (name, channel), old in sorted(before.items()):
        new = after.get((name, channel))
        if old != new:
            found.append(Move(name, channel, old, new))
            if channel != LATEST:
                event(db, name, channel, action, old, new, stack(db, name, channel), reason)
    return found


def descendants(db: sqlite3.Connection, name: str, version: str) -> list[tuple[str, str]]:
    """Every version built on ``name@version``, at any depth."""
    found: list[tuple[str, str]] = []
    pending = [(name, version)]
    while pending:
        for child in db.execute("SELECT name, version FROM images WHERE parent_name = ? AND parent_version = ?",
                                pending.pop()):
            found.append((child[0], child[1]))
            pending.append((child[0], child[1]))
    return found


def promote(db: sqlite3.Connection, name: str, version: str, channel: str) -> Move:
    """Point ``channel`` of ``name`` at ``version`` (verified and not revoked only)."""
    check_channel(channel)
    if channel == LATEST:
        raise CatalogError("the latest channel moves by itself on every verified bake",
                           hint="promote to a named channel, e.g. --channel prod")
    now = status(db, name, version)
    if now != "verified":
        raise CatalogError(f"cannot promote {name}@{version}: it is {now}",
                           hint="only verified, non-revoked versions can be promoted")
    assigned = stack(db, name, channel)
    before = effective(db, name, assigned)
    assigned.append(version)
    event(db, name, channel, "promote", before, version, assigned)
    return Move(name, channel, before, version)


def rollback(db: sqlite3.Connection, name: str, channel: str) -> Move:
    """Move ``channel`` back one step, to the assignment before the current one."""
    check_channel(channel)
    if channel == LATEST:
        raise CatalogError("the latest channel cannot be rolled back",
                           hint="revoke the bad version instead: invoke revoke NAME@VERSION")
    assigned = stack(db, name, channel)
    before = effective(db, name, assigned)
    if before is None:
        raise CatalogError(f"channel {channel} of {name} has no assignment to roll back",
                           hint=f"see invoke catalog.channels {name}")
    while assigned and assigned[-1] != before:
        assigned.pop()
    assigned.pop()
    after = effective(db, name, assigned)
    if after is None:
        raise CatalogError(f"channel {channel} of {name} has no earlier good version to roll back to")
    event(db, name, channel, "rollback", before, after, assigned)
    return Move(name, channel, before, after)


def revoke(db: sqlite3.Connection, name: str, version: str, *, reason: str,
           cascade: bool) -> tuple[list[str], list[Move]]:
    """Revoke a version (and with ``cascade`` every descendant); channels fall back.

    Returns the revoked references and the channel moves it caused.
    """
    if not reason.strip():
        raise ConfigError("a revoke needs a reason", hint='add --reason "…"')
    now = status(db, name, version)
    if now not in ("verified", "failed", "interrupted"):
        raise CatalogError(f"cannot revoke {name}@{version}: it is {now}")
    chosen = [(name, version), *(descendants(db, name, version) if cascade else [])]
    before = all_channels(db, {n for n, _ in chosen})
    revoked = []
    for n, v in chosen:
        if status(db, n, v) not in ("revoked", "deleted", "building"):
            move(db, image_id(db, n, v), "revoked", reason)
            revoked.append(f"{n}@{v}")
    return revoked, moves(db, before, "fallback", reason)


def restore(db: sqlite3.Connection, name: str, version: str, *, cascade: bool = False) -> tuple[list[str], list[Move]]:
    """Undo a revoke: the version (and with ``cascade`` its revoked descendants) is what it was before."""
    if status(db, name, version) != "revoked":
        raise CatalogError(f"{name}@{version} is not revoked", hint="nothing to restore")
    chosen = [(name, version), *(descendants(db, name, version) if cascade else [])]
    before = all_channels(db, {n for n, _ in chosen})
    restored = []
    for n, v in chosen:
        owner = image_id(db, n, v)
        if status(db, n, v) != "revoked":
            continue
        parent = parent_status(db, owner)
        if parent is not None and parent[0] == "revoked":
            raise CatalogError(f"cannot restore {n}@{v}: its parent is revoked",
                               hint="restore the parent first, or use --cascade from the parent")
        previous = db.execute("SELECT from_status FROM status_history WHERE image_id = ? AND to_status = 'revoked'"
                              " ORDER BY rowid DESC LIMIT 1", (owner,)).fetchone()
        move(db, owner, previous[0] if previous and previous[0] else "verified", "restored")
        restored.append(f"{n}@{v}")
    return restored, moves(db, before, "restore", "restored")
