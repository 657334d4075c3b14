"""A bake's life in the catalog: a version allocated as ``building``, its artifacts, its verdict.

Each function is one change, run by a store inside one transaction. Every
status change is kept in ``status_history`` (who, when, from, to, why), so
nothing a bake did is ever lost.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from pipeline import versions
from pipeline.catalog import fences
from pipeline.catalog.queries import image_id, status
from pipeline.catalog.records import STATUSES, Artifact, actor, now_iso
from pipeline.errors import CatalogError


def history(db: sqlite3.Connection, owner: int, before: str | None, after: str, reason: str | None) -> None:
    """One line of a version's status history."""
    db.execute("INSERT INTO status_history VALUES (?,?,?,?,?,?)", (owner, now_iso(), actor(), before, after, reason))


def move(db: sqlite3.Connection, owner: int, to: str, reason: str | None) -> None:
    """Set a version's status (by row id) and keep the history; nothing when it already is."""
    before = db.execute("SELECT status FROM images WHERE id = ?", (owner,)).fetchone()[0]
    if before != to:
        db.execute("UPDATE images SET status = ? WHERE id = ?", (to, owner))
        history(db, owner, before, to, reason)


def parent_status(db: sqlite3.Connection, owner: int) -> tuple[str, str, str] | None:
    """(status, name, version) of a version's parent, or None for a root image."""
    return db.execute("SELECT p.status, p.name, p.version FROM images c JOIN images p ON p.name = c.parent_name AND"
                      " p.version = c.parent_version WHERE c.id = ?", (owner,)).fetchone()


def begin_bake(db: sqlite3.Connection, *, name: str, parent: tuple[str, str] | None, fingerprint: str,
               git_commit: str, git_dirty: bool, run_id: str, log_dir: str, inputs: Mapping[str, Any] | None = None,
               clock: versions.Clock = versions.utcnow, version: str | None = None) -> str:
    """Allocate a new version of ``name`` (or record ``version``, when adopting) as ``building``.

    Fails when the parent is revoked (or not verified) at this moment.
    """
    if parent is not None:
        row = db.execute("SELECT status FROM images WHERE name = ? AND version = ?", parent).fetchone()
        if row is None or row[0] != "verified":
            raise CatalogError(f"cannot bake {name} on {parent[0]}@{parent[1]}: it is {row[0] if row else 'missing'}",
                               hint=f"bake a new {parent[0]} (invoke bake {parent[0]}) or restore it")
    taken = [r[0] for r in db.execute("SELECT version FROM images WHERE name = ?", (name,))]
    if version is None:
        version = versions.next_version(taken, clock)
    elif version in taken or versions.parse(version) is None:
        raise CatalogError(f"{name}@{version} is already recorded")
    cur = db.execute(
        "INSERT INTO images (name, version, status, parent_name, parent_version, fingerprint, inputs,"
        " git_commit, git_dirty, created_at, run_id, log_dir) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (name, version, "building", parent[0] if parent else None, parent[1] if parent else None, fingerprint,
         json.dumps(dict(inputs or {}), sort_keys=True), git_commit, int(git_dirty), now_iso(), run_id, log_dir))
    history(db, int(cur.lastrowid or 0), None, "building", "bake started")
    return version


def add_artifact(db: sqlite3.Connection, name: str, version: str, artifact: Artifact) -> None:
    """Attach (or replace) the artifact of a version on one target/region."""
    owner = image_id(db, name, version)
    db.execute("DELETE FROM artifacts WHERE image_id = ? AND target = ? AND region IS ?",
               (owner, artifact.target, artifact.region))
    db.execute("INSERT INTO artifacts VALUES (?,?,?,?,?)",
               (owner, artifact.target, artifact.region, artifact.id, artifact.path))


def set_status(db: sqlite3.Connection, name: str, version: str, to: str, *, report: str | None = None,
               reason: str | None = None) -> None:
    """Move a version to ``to`` (one of STATUSES); only a version whose parent is verified can be verified."""
    if to not in STATUSES:
        raise CatalogError(f"unknown status {to!r}")
    owner = image_id(db, name, version)
    parent = parent_status(db, owner) if to == "verified" else None
    if parent is not None and parent[0] != "verified":
        raise CatalogError(f"{name}@{version} cannot be verified: its parent {parent[1]}@{parent[2]} is {parent[0]}",
                           hint=f"bake a new {parent[1]}")
    move(db, owner, to, reason)
    if report is not None:
        db.execute("UPDATE images SET report = ? WHERE id = ?", (report, owner))


def resume(db: sqlite3.Connection, name: str, version: str, *, reason: str) -> None:
    """An interrupted bake goes on: its record is ``building`` again (the history keeps both)."""
    now = status(db, name, version)
    if now not in ("interrupted", "building"):
        raise CatalogError(f"cannot resume {name}@{version}: it is {now}")
    move(db, image_id(db, name, version), "building", reason)


def set_log_dir(db: sqlite3.Connection, name: str, version: str, log_dir: str) -> None:
    """Record where a version's logs are."""
    db.execute("UPDATE images SET log_dir = ? WHERE id = ?", (log_dir, image_id(db, name, version)))


def record_packages(db: sqlite3.Connection, name: str, version: str, packages: Iterable[Mapping[str, str]]) -> None:
    """Replace a version's package manifest (name, version, architecture)."""
    owner = image_id(db, name, version)
    db.execute("DELETE FROM packages WHERE image_id = ?", (owner,))
    db.executemany("INSERT INTO packages VALUES (?,?,?,?)",
                   [(owner, p["name"], p["version"], p["architecture"]) for p in packages])


def record_verification(db: sqlite3.Connection, name: str, version: str, *, spec_digest: str, ok: bool,
                        report: str | None) -> None:
    """Remember one verification of a version (a bake's, or a re-verification)."""
    db.execute("INSERT INTO verifications VALUES (?,?,?,?,?)",
               (image_id(db, name, version), now_iso(), spec_digest, int(ok), report))


def mark_deleted(db: sqlite3.Connection, name: str, version: str, reason: str) -> None:
    """The artifact is gone; the record stays, with its history."""
    move(db, image_id(db, name, version), "deleted", reason)


def abandon(db: sqlite3.Connection, name: str, version: str, key: str, seen: Mapping[str, int], reason: str) -> bool:
    """A ``building`` record no live bake holds (its holder died unreleased, or was paused past its lease)
    becomes ``interrupted``, so its artifacts are judged like any interrupted bake's — unless a bake claimed
    its lease since ``seen`` was read (a generation moved) or it is not building any more. Every target's
    generation is bumped in the same change, so a paused holder that wakes is fenced off."""
    if fences.generations(db, name, key) != dict(seen) or status(db, name, version) != "building":
        return False
    for target in seen:
        fences.bump(db, name, key, target)
    move(db, image_id(db, name, version), "interrupted", reason)
    return True
