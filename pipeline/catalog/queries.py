"""Reading the catalog: versions, lineage, channels, history — and ``resolve``, the deployer's question.

Every function takes an open connection, so any store (a SQLite file, the S3
document loaded in memory) answers the same way.

``latest`` is computed: the newest verified version. A named channel is a stack
of assignments (kept in its newest event); it points at the newest assignment
that is still verified, so a revoked version is skipped and comes back on restore.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from pipeline import versions
from pipeline.catalog.records import LATEST, Artifact, ChannelEvent, ImageRecord, check_channel
from pipeline.errors import CatalogError


def image_id(db: sqlite3.Connection, name: str, version: str) -> int:
    """The row id of ``name@version``; CatalogError when there is none."""
    row = db.execute("SELECT id FROM images WHERE name = ? AND version = ?", (name, version)).fetchone()
    if row is None:
        raise CatalogError(f"no such image version {name}@{version}", hint="see invoke catalog.list")
    return int(row[0])


def status(db: sqlite3.Connection, name: str, version: str) -> str:
    """The status of ``name@version``."""
    return str(db.execute("SELECT status FROM images WHERE id = ?", (image_id(db, name, version),)).fetchone()[0])


def records(db: sqlite3.Connection, where: str = "", args: Sequence[object] = ()) -> list[ImageRecord]:
    """Image versions matching ``where`` with their artifacts, ordered by name then version."""
    cur = db.execute("SELECT * FROM images" + where, tuple(args))
    cols = [d[0] for d in cur.description]
    rows = [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
    arts: dict[int, list[Artifact]] = {}
    ids = [r["id"] for r in rows]
    for i in range(0, len(ids), 900):
        chunk = ids[i:i + 900]
        for owner, target, region, art_id, path in db.execute(
                f"SELECT * FROM artifacts WHERE image_id IN ({','.join('?' * len(chunk))})", chunk):
            arts.setdefault(owner, []).append(Artifact(target=target, id=art_id, region=region, path=path))
    found = [ImageRecord(
        name=r["name"], version=r["version"], status=r["status"],
        parent=(r["parent_name"], r["parent_version"]) if r["parent_name"] else None,
        fingerprint=r["fingerprint"], git_commit=r["git_commit"], git_dirty=bool(r["git_dirty"]),
        created_at=r["created_at"], run_id=r["run_id"], log_dir=r["log_dir"], report=r["report"],
        artifacts=tuple(arts.get(r["id"], ())), inputs=json.loads(r["inputs"] or "{}")) for r in rows]
    return sorted(found, key=lambda rec: (rec.name, rec.key))


def versions_of(db: sqlite3.Connection, name: str | None = None) -> list[ImageRecord]:
    """Every recorded version (of ``name``)."""
    return records(db, " WHERE name = ?", (name,)) if name else records(db)


def get(db: sqlite3.Connection, name: str, version: str) -> ImageRecord:
    """One version; CatalogError when it does not exist."""
    found = records(db, " WHERE name = ? AND version = ?", (name, version))
    if not found:
        raise CatalogError(f"no such image version {name}@{version}", hint=f"see invoke catalog.list {name}")
    return found[0]


def latest_version(db: sqlite3.Connection, name: str) -> str | None:
    """The newest verified version of ``name``."""
    rows = [r[0] for r in db.execute("SELECT version FROM images WHERE name = ? AND status = 'verified'", (name,))]
    return max(rows, key=versions.parse) if rows else None


def with_key(db: sqlite3.Connection, name: str, fingerprint: str) -> ImageRecord | None:
    """The newest verified version of ``name`` baked from exactly these inputs."""
    found = records(db, " WHERE name = ? AND fingerprint = ? AND status = 'verified'", (name, fingerprint))
    return found[-1] if found else None


def stack(db: sqlite3.Connection, name: str, channel: str) -> list[str]:
    """A named channel's assignments, oldest first."""
    row = db.execute("SELECT stack FROM channel_events WHERE name = ? AND channel = ? ORDER BY id DESC LIMIT 1",
                     (name, channel)).fetchone()
    return list(json.loads(row[0])) if row else []


def effective(db: sqlite3.Connection, name: str, assigned: Sequence[str]) -> str | None:
    """The newest assignment of a stack that is still verified."""
    if not assigned:
        return None
    good = {r[0] for r in db.execute(
        f"SELECT version FROM images WHERE name = ? AND status = 'verified' AND version IN "
        f"({','.join('?' * len(assigned))})", (name, *assigned))}
    return next((v for v in reversed(assigned) if v in good), None)


def channel(db: sqlite3.Connection, name: str, channel: str = LATEST) -> str | None:
    """The version ``channel`` of ``name`` points at now, or None."""
    if channel == LATEST:
        return latest_version(db, name)
    return effective(db, name, stack(db, name, channel))


def all_channels(db: sqlite3.Connection, names: set[str]) -> dict[tuple[str, str], str | None]:
    """Where every channel of ``names`` points: {(name, channel): version}."""
    state: dict[tuple[str, str], str | None] = {}
    for name in names:
        state[(name, LATEST)] = latest_version(db, name)
        for (named,) in db.execute("SELECT DISTINCT channel FROM channel_events WHERE name = ?", (name,)):
            state[(name, named)] = channel(db, name, named)
    return state


def channel_history(db: sqlite3.Connection, name: str, channel: str) -> list[ChannelEvent]:
    """Every move of one channel, oldest first."""
    return [ChannelEvent(name, channel, at, who, action, f, t, reason) for at, who, action, f, t, reason in
            db.execute("SELECT at, who, action, from_version, to_version, reason FROM channel_events"
                       " WHERE name = ? AND channel = ? ORDER BY id", (name, channel))]


def status_history(db: sqlite3.Connection, name: str, version: str) -> list[dict[str, Any]]:
    """Every status change of a version, oldest first."""
    return [{"at": at, "who": who, "from": f, "to": t, "reason": reason} for at, who, f, t, reason in
            db.execute("SELECT at, who, from_status, to_status, reason FROM status_history"
                       " WHERE image_id = ? ORDER BY rowid", (image_id(db, name, version),))]


def packages(db: sqlite3.Connection, name: str, version: str) -> list[dict[str, str]]:
    """The recorded package manifest of a version, sorted by name."""
    return [{"name": n, "version": v, "architecture": a} for n, v, a in db.execute(
        "SELECT name, version, architecture FROM packages WHERE image_id = ? ORDER BY name, architecture",
        (image_id(db, name, version),))]


def last_verification(db: sqlite3.Connection, name: str, version: str) -> dict[str, Any] | None:
    """The newest verification of a version."""
    row = db.execute("SELECT at, spec_digest, ok, report FROM verifications WHERE image_id = ?"
                     " ORDER BY rowid DESC LIMIT 1", (image_id(db, name, version),)).fetchone()
    return {"at": row[0], "spec_digest": row[1], "ok": bool(row[2]), "report": row[3]} if row else None


def resolve(db: sqlite3.Connection, name: str, *, channel_name: str = LATEST, target: str = "local",
            region: str | None = None) -> Artifact:
    """The artifact deploy tooling should use for ``name`` on a channel, target and region."""
    check_channel(channel_name)
    if not db.execute("SELECT 1 FROM images WHERE name = ? LIMIT 1", (name,)).fetchone():
        raise CatalogError(f"no image called {name!r} in the catalog")
    version = channel(db, name, channel_name)
    if version is None:
        known = [c for (_, c), v in sorted(all_channels(db, {name}).items()) if v]
        raise CatalogError(f"{name} has no version on channel {channel_name!r}",
                           hint=f"channels with a version: {', '.join(known) or 'none'}")
    rec = get(db, name, version)
    art = rec.artifact(target, region)
    if art is None:
        raise CatalogError(f"{rec.ref} ({channel_name}) has no artifact on {target}"
                           + (f" in {region}" if region else ""))
    return art


def channels(db: sqlite3.Connection, name: str) -> dict[str, str | None]:
    """Every channel of ``name`` and where it points (latest included), by channel name."""
    return {ch: v for (_, ch), v in sorted(all_channels(db, {name}).items())}
