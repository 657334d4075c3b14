"""The image catalog: every baked version, its status, lineage, channels and artifacts.

A SQLite file is the local store. Each write is one transaction (``BEGIN
IMMEDIATE``), so concurrent writers queue instead of losing updates, and WAL
journaling with full sync keeps the file whole if a writer is killed mid-write.

Deploy tooling reads it through ``resolve`` (also ``invoke catalog.resolve``)
or the export. The export shape (``schema_version`` 1, described by
``pipeline/schema/catalog-v1.schema.json``) is a contract: later versions add
fields but never remove or rename one.

Channels: ``latest`` is computed — the newest verified version. Named channels
move only by ``promote`` and ``rollback``; each keeps a stack of assignments, so
a rollback goes back one step and a revoked version is skipped (the channel
falls back to its previous good assignment, and comes back on restore).

Example, as a deploy script would use it::

    from pipeline.catalog import Catalog
    with Catalog.open("/var/lib/kiln/catalog.db", create=False) as cat:
        image = cat.resolve("app", channel="prod")   # an Artifact
        print(image.id, image.path)
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline import versions
from pipeline.errors import CatalogError, ConfigError
from pipeline.progress import grid

SCHEMA_VERSION = 1
TABLES = ("images", "artifacts", "status_history", "channel_events", "packages", "verifications")
STATUSES = ("building", "verified", "failed", "interrupted", "revoked", "deleted")
LATEST = "latest"
CHANNEL_RE = r"^[a-z][a-z0-9-]{0,30}$"
DB_VERSION = 1

_DDL = """
CREATE TABLE IF NOT EXISTS images (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL,
    version         TEXT NOT NULL,
    status          TEXT NOT NULL,
    parent_name     TEXT,
    parent_version  TEXT,
    fingerprint     TEXT NOT NULL,
    inputs          TEXT NOT NULL DEFAULT '{}',
    git_commit      TEXT NOT NULL,
    git_dirty       INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    log_dir         TEXT NOT NULL,
    report          TEXT,
    UNIQUE (name, version)
);
CREATE INDEX IF NOT EXISTS images_by_key ON images(name, fingerprint);
CREATE INDEX IF NOT EXISTS images_by_parent ON images(parent_name, parent_version);
CREATE TABLE IF NOT EXISTS artifacts (
    image_id    INTEGER NOT NULL REFERENCES images(id),
    target      TEXT NOT NULL,
    region      TEXT,
    artifact_id TEXT NOT NULL,
    path        TEXT,
    UNIQUE (image_id, target, region)
);
CREATE INDEX IF NOT EXISTS artifacts_by_image ON artifacts(image_id);
CREATE TABLE IF NOT EXISTS status_history (
    image_id    INTEGER NOT NULL REFERENCES images(id),
    at          TEXT NOT NULL,
    who         TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    reason      TEXT
);
CREATE INDEX IF NOT EXISTS status_history_by_image ON status_history(image_id);
CREATE TABLE IF NOT EXISTS channel_events (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    channel     TEXT NOT NULL,
    at          TEXT NOT NULL,
    who         TEXT NOT NULL,
    action      TEXT NOT NULL,
    from_version TEXT,
    to_version  TEXT,
    stack       TEXT NOT NULL,
    reason      TEXT
);
CREATE INDEX IF NOT EXISTS channel_events_by_channel ON channel_events(name, channel, id);
CREATE TABLE IF NOT EXISTS packages (
    image_id     INTEGER NOT NULL REFERENCES images(id),
    name         TEXT NOT NULL,
    version      TEXT NOT NULL,
    architecture TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS packages_by_image ON packages(image_id);
CREATE TABLE IF NOT EXISTS verifications (
    image_id    INTEGER NOT NULL REFERENCES images(id),
    at          TEXT NOT NULL,
    spec_digest TEXT NOT NULL,
    ok          INTEGER NOT NULL,
    report      TEXT
);
CREATE INDEX IF NOT EXISTS verifications_by_image ON verifications(image_id);
"""


@dataclass(frozen=True)
class Artifact:
    """Where a version lives on one target (a qcow2 locally, an AMI per region on AWS)."""

    target: str
    id: str
    region: str | None = None
    path: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Export shape."""
        return {"target": self.target, "region": self.region, "id": self.id, "path": self.path}


@dataclass(frozen=True)
class ImageRecord:
    """One image version as the catalog knows it."""

    name: str
    version: str
    status: str
    parent: tuple[str, str] | None
    fingerprint: str
    git_commit: str
    git_dirty: bool
    created_at: str
    run_id: str
    log_dir: str
    report: str | None = None
    artifacts: tuple[Artifact, ...] = field(default_factory=tuple)
    inputs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    @property
    def key(self) -> tuple[int, int, int, int]:
        """Sort key of the version."""
        return versions.parse(self.version)

    def artifact(self, target: str = "local", region: str | None = None) -> Artifact | None:
        """This version's artifact on ``target`` (and ``region``), if any."""
        for art in self.artifacts:
            if art.target == target and (region is None or art.region == region):
                return art
        return None

    def to_json(self) -> dict[str, Any]:
        """The export shape of one image version (without history and packages)."""
        return {
            "name": self.name,
            "version": self.version,
            "status": self.status,
            "parent": {"name": self.parent[0], "version": self.parent[1]} if self.parent else None,
            "fingerprint": self.fingerprint,
            "git": {"commit": self.git_commit, "dirty": self.git_dirty},
            "created_at": self.created_at,
            "run_id": self.run_id,
            "log_dir": self.log_dir,
            "report": self.report,
            "artifacts": [a.to_json() for a in self.artifacts],
        }


@dataclass(frozen=True)
class ChannelEvent:
    """One move of a channel."""

    name: str
    channel: str
    at: str
    who: str
    action: str
    from_version: str | None
    to_version: str | None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Export shape."""
        return {"at": self.at, "who": self.who, "action": self.action, "from": self.from_version,
                "to": self.to_version, "reason": self.reason}


@dataclass(frozen=True)
class Move:
    """A channel that changed as a side effect (revoke, restore): for the user to read."""

    name: str
    channel: str
    from_version: str | None
    to_version: str | None

    def describe(self) -> str:
        """``channel prod of app: 2026.… → 2026.…``."""
        return (f"channel {self.channel} of {self.name}: {self.from_version or '(none)'} → "
                f"{self.to_version or '(none: no good version left)'}")


def now_iso() -> str:
    """UTC timestamp with a Z, second precision."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def actor() -> str:
    """Who is acting: ``KILN_ACTOR`` (Jenkins sets it to the build) or user@host."""
    explicit = os.environ.get("KILN_ACTOR")
    if explicit:
        return explicit
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def check_channel(channel: str) -> str:
    """A valid channel name, or ConfigError."""
    import re

    if not re.match(CHANNEL_RE, channel):
        raise ConfigError(f"invalid channel name {channel!r}",
                          hint="use lower-case letters, digits and dashes, e.g. prod or staging")
    return channel


class Catalog:
    """The SQLite catalog. Open with ``Catalog.open(path)``; use as a context manager."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path | str, *, create: bool = True) -> Catalog:
        """Open (and create, unless ``create`` is false) the catalog at ``path``."""
        path = Path(path)
        if not path.exists() and not create:
            raise CatalogError(f"no catalog at {path}", hint="bake an image first (invoke bake IMAGE)")
        if path.exists() and not os.access(path, os.R_OK):
            raise CatalogError(f"{path}: catalog is not readable", hint="check its owner and permissions")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(path, timeout=120, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=120000")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            if current > DB_VERSION:
                raise CatalogError(f"{path}: catalog format {current} is newer than this Kiln ({DB_VERSION})",
                                   hint="upgrade Kiln")
            if current < DB_VERSION:
                # Idempotent DDL: two processes creating the catalog at once both succeed.
                conn.executescript(_DDL + f"PRAGMA user_version={DB_VERSION};")
        except sqlite3.DatabaseError as exc:
            raise CatalogError(f"{path}: unreadable catalog ({exc})",
                               hint="restore it from a backup or an export; Kiln never overwrites it") from None
        return cls(conn, path)

    @classmethod
    def memory(cls, state: Mapping[str, Any] | None = None) -> Catalog:
        """A catalog in memory, loaded from a ``dump()`` (how the S3 store works on its document)."""
        conn = sqlite3.connect(":memory:", isolation_level=None)
        conn.execute("PRAGMA foreign_keys=ON")
        conn.executescript(_DDL + f"PRAGMA user_version={DB_VERSION};")
        if state:
            if state.get("format") != DB_VERSION:
                raise CatalogError(f"catalog document format {state.get('format')!r} is not {DB_VERSION}",
                                   hint="upgrade Kiln")
            conn.execute("BEGIN")
            for table in TABLES:
                rows = state.get("tables", {}).get(table, [])
                if rows:
                    marks = ",".join("?" * len(rows[0]))
                    conn.executemany(f"INSERT INTO {table} VALUES ({marks})", [tuple(r) for r in rows])
            conn.execute("COMMIT")
        return cls(conn, Path(":memory:"))

    def dump(self) -> dict[str, Any]:
        """Every row of every table: the lossless form a remote store keeps."""
        tables = {table: [list(r) for r in self._conn.execute(f"SELECT * FROM {table} ORDER BY rowid")]
                  for table in TABLES}
        return {"format": DB_VERSION, "tables": tables}

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; rolled back on any exception."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # -- writes: bakes ------------------------------------------------------------

    def begin_bake(self, *, name: str, parent: tuple[str, str] | None, fingerprint: str,
                   git_commit: str, git_dirty: bool, run_id: str, log_dir: str,
                   inputs: Mapping[str, Any] | None = None, clock: versions.Clock = versions.utcnow,
                   version: str | None = None) -> str:
        """Allocate a new version of ``name`` (or record ``version``, when adopting) as ``building``.

        Fails when the parent is revoked (or not verified) at this moment.
        """
        with self.transaction() as db:
            if parent is not None:
                row = db.execute("SELECT status FROM images WHERE name = ? AND version = ?", parent).fetchone()
                if row is None or row[0] != "verified":
                    state = row[0] if row else "missing"
                    raise CatalogError(f"cannot bake {name} on {parent[0]}@{parent[1]}: it is {state}",
                                       hint=f"bake a new {parent[0]} (invoke bake {parent[0]}) or restore it")
            taken = [r[0] for r in db.execute("SELECT version FROM images WHERE name = ?", (name,))]
            if version is None:
                version = versions.next_version(taken, clock)
            elif version in taken or versions.parse(version) is None:
                raise CatalogError(f"{name}@{version} is already recorded")
            cur = db.execute(
                "INSERT INTO images (name, version, status, parent_name, parent_version, fingerprint, inputs,"
                " git_commit, git_dirty, created_at, run_id, log_dir) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (name, version, "building", parent[0] if parent else None, parent[1] if parent else None,
                 fingerprint, json.dumps(dict(inputs or {}), sort_keys=True), git_commit, int(git_dirty),
                 now_iso(), run_id, log_dir))
            self._history(db, int(cur.lastrowid or 0), None, "building", "bake started")
        return version

    def add_artifact(self, name: str, version: str, artifact: Artifact) -> None:
        """Attach (or replace) the artifact of a version on one target/region."""
        with self.transaction() as db:
            image_id = self._id(db, name, version)
            db.execute("DELETE FROM artifacts WHERE image_id = ? AND target = ? AND region IS ?",
                       (image_id, artifact.target, artifact.region))
            db.execute("INSERT INTO artifacts VALUES (?,?,?,?,?)",
                       (image_id, artifact.target, artifact.region, artifact.id, artifact.path))

    def set_status(self, name: str, version: str, status: str, *, report: str | None = None,
                   reason: str | None = None) -> None:
        """Move a version to ``status`` (one of STATUSES), keeping the history."""
        if status not in STATUSES:
            raise CatalogError(f"unknown status {status!r}")
        with self.transaction() as db:
            image_id = self._id(db, name, version)
            if status == "verified":
                parent = db.execute("SELECT p.status, p.name, p.version FROM images c JOIN images p ON"
                                    " p.name = c.parent_name AND p.version = c.parent_version WHERE c.id = ?",
                                    (image_id,)).fetchone()
                if parent is not None and parent[0] != "verified":
                    raise CatalogError(f"{name}@{version} cannot be verified: its parent {parent[1]}@{parent[2]} "
                                       f"is {parent[0]}", hint=f"bake a new {parent[1]}")
            self._set_status(db, image_id, status, reason)
            if report is not None:
                db.execute("UPDATE images SET report = ? WHERE id = ?", (report, image_id))

    def resume(self, name: str, version: str, *, reason: str) -> None:
        """An interrupted bake goes on: its record is ``building`` again (the history keeps both)."""
        with self.transaction() as db:
            status = self._status(db, name, version)
            if status not in ("interrupted", "building"):
                raise CatalogError(f"cannot resume {name}@{version}: it is {status}")
            self._set_status(db, self._id(db, name, version), "building", reason)

    def set_log_dir(self, name: str, version: str, log_dir: str) -> None:
        """Record where a version's logs are."""
        with self.transaction() as db:
            db.execute("UPDATE images SET log_dir = ? WHERE id = ?", (log_dir, self._id(db, name, version)))

    def record_packages(self, name: str, version: str, packages: Iterable[Mapping[str, str]]) -> None:
        """Replace a version's package manifest (name, version, architecture)."""
        with self.transaction() as db:
            image_id = self._id(db, name, version)
            db.execute("DELETE FROM packages WHERE image_id = ?", (image_id,))
            db.executemany("INSERT INTO packages VALUES (?,?,?,?)",
                           [(image_id, p["name"], p["version"], p["architecture"]) for p in packages])

    def record_verification(self, name: str, version: str, *, spec_digest: str, ok: bool,
                            report: str | None) -> None:
        """Remember one verification of a version (a bake's, or a re-verification)."""
        with self.transaction() as db:
            db.execute("INSERT INTO verifications VALUES (?,?,?,?,?)",
                       (self._id(db, name, version), now_iso(), spec_digest, int(ok), report))

    # -- writes: channels, revocation, retention ---------------------------------

    def promote(self, name: str, version: str, channel: str) -> Move:
        """Point ``channel`` of ``name`` at ``version`` (verified and not revoked only)."""
        check_channel(channel)
        if channel == LATEST:
            raise CatalogError("the latest channel moves by itself on every verified bake",
                               hint="promote to a named channel, e.g. --channel prod")
        with self.transaction() as db:
            status = self._status(db, name, version)
            if status != "verified":
                raise CatalogError(f"cannot promote {name}@{version}: it is {status}",
                                   hint="only verified, non-revoked versions can be promoted")
            stack = self._stack(db, name, channel)
            before = self._effective(db, name, stack)
            stack.append(version)
            self._event(db, name, channel, "promote", before, version, stack)
        return Move(name, channel, before, version)

    def rollback(self, name: str, channel: str) -> Move:
        """Move ``channel`` back one step, to the assignment before the current one."""
        check_channel(channel)
        if channel == LATEST:
            raise CatalogError("the latest channel cannot be rolled back",
                               hint="revoke the bad version instead: invoke revoke NAME@VERSION")
        with self.transaction() as db:
            stack = self._stack(db, name, channel)
            before = self._effective(db, name, stack)
            if before is None:
                raise CatalogError(f"channel {channel} of {name} has no assignment to roll back",
                                   hint=f"see invoke catalog.channels {name}")
            while stack and stack[-1] != before:
                stack.pop()
            stack.pop()
            after = self._effective(db, name, stack)
            if after is None:
                raise CatalogError(f"channel {channel} of {name} has no earlier good version to roll back to")
            self._event(db, name, channel, "rollback", before, after, stack)
        return Move(name, channel, before, after)

    def revoke(self, name: str, version: str, *, reason: str, cascade: bool) -> tuple[list[str], list[Move]]:
        """Revoke a version (and with ``cascade`` every descendant); channels fall back.

        Returns the revoked references and the channel moves it caused.
        """
        if not reason.strip():
            raise ConfigError("a revoke needs a reason", hint='add --reason "…"')
        with self.transaction() as db:
            status = self._status(db, name, version)
            if status not in ("verified", "failed", "interrupted"):
                raise CatalogError(f"cannot revoke {name}@{version}: it is {status}")
            targets = [(name, version)]
            if cascade:
                targets += self._descendants(db, name, version)
            before = self._all_channels(db, {n for n, _ in targets})
            revoked = []
            for n, v in targets:
                if self._status(db, n, v) in ("revoked", "deleted", "building"):
                    continue
                self._set_status(db, self._id(db, n, v), "revoked", reason)
                revoked.append(f"{n}@{v}")
            moves = self._moves(db, before, "fallback", reason)
        return revoked, moves

    def restore(self, name: str, version: str, *, cascade: bool = False) -> tuple[list[str], list[Move]]:
        """Undo a revoke: the version (and with ``cascade`` its revoked descendants) is what it was before."""
        with self.transaction() as db:
            if self._status(db, name, version) != "revoked":
                raise CatalogError(f"{name}@{version} is not revoked", hint="nothing to restore")
            targets = [(name, version)]
            if cascade:
                targets += self._descendants(db, name, version)
            before = self._all_channels(db, {n for n, _ in targets})
            restored = []
            for n, v in targets:
                image_id = self._id(db, n, v)
                if self._status(db, n, v) != "revoked":
                    continue
                parent = db.execute("SELECT p.status FROM images c JOIN images p ON p.name = c.parent_name AND"
                                    " p.version = c.parent_version WHERE c.id = ?", (image_id,)).fetchone()
                if parent is not None and parent[0] == "revoked":
                    raise CatalogError(f"cannot restore {n}@{v}: its parent is revoked",
                                       hint="restore the parent first, or use --cascade from the parent")
                previous = db.execute("SELECT from_status FROM status_history WHERE image_id = ? AND"
                                      " to_status = 'revoked' ORDER BY rowid DESC LIMIT 1", (image_id,)).fetchone()
                self._set_status(db, image_id, previous[0] if previous and previous[0] else "verified", "restored")
                restored.append(f"{n}@{v}")
            moves = self._moves(db, before, "restore", "restored")
        return restored, moves

    def mark_deleted(self, name: str, version: str, reason: str) -> None:
        """The artifact is gone; the record stays, with its history."""
        with self.transaction() as db:
            self._set_status(db, self._id(db, name, version), "deleted", reason)

    # -- internals ------------------------------------------------------------------

    @staticmethod
    def _id(db: sqlite3.Connection, name: str, version: str) -> int:
        row = db.execute("SELECT id FROM images WHERE name = ? AND version = ?", (name, version)).fetchone()
        if row is None:
            raise CatalogError(f"no such image version {name}@{version}", hint="see invoke catalog.list")
        return int(row[0])

    def _status(self, db: sqlite3.Connection, name: str, version: str) -> str:
        return str(db.execute("SELECT status FROM images WHERE id = ?", (self._id(db, name, version),)).fetchone()[0])

    @staticmethod
    def _history(db: sqlite3.Connection, image_id: int, before: str | None, after: str, reason: str | None) -> None:
        db.execute("INSERT INTO status_history VALUES (?,?,?,?,?,?)", (image_id, now_iso(), actor(), before, after,
                                                                       reason))

    def _set_status(self, db: sqlite3.Connection, image_id: int, status: str, reason: str | None) -> None:
        before = db.execute("SELECT status FROM images WHERE id = ?", (image_id,)).fetchone()[0]
        if before == status:
            return
        db.execute("UPDATE images SET status = ? WHERE id = ?", (status, image_id))
        self._history(db, image_id, before, status, reason)

    def _descendants(self, db: sqlite3.Connection, name: str, version: str) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        pending = [(name, version)]
        while pending:
            n, v = pending.pop()
            for child in db.execute("SELECT name, version FROM images WHERE parent_name = ? AND parent_version = ?",
                                    (n, v)):
                found.append((child[0], child[1]))
                pending.append((child[0], child[1]))
        return found

    @staticmethod
    def _stack(db: sqlite3.Connection, name: str, channel: str) -> list[str]:
        row = db.execute("SELECT stack FROM channel_events WHERE name = ? AND channel = ? ORDER BY id DESC LIMIT 1",
                         (name, channel)).fetchone()
        return list(json.loads(row[0])) if row else []

    @staticmethod
    def _effective(db: sqlite3.Connection, name: str, stack: Sequence[str]) -> str | None:
        if not stack:
            return None
        good = {r[0] for r in db.execute(
            f"SELECT version FROM images WHERE name = ? AND status = 'verified' AND version IN "
            f"({','.join('?' * len(stack))})", (name, *stack))}
        return next((v for v in reversed(stack) if v in good), None)

    def _event(self, db: sqlite3.Connection, name: str, channel: str, action: str, before: str | None,
               after: str | None, stack: Sequence[str], reason: str | None = None) -> None:
        db.execute("INSERT INTO channel_events (name, channel, at, who, action, from_version, to_version, stack,"
                   " reason) VALUES (?,?,?,?,?,?,?,?,?)",
                   (name, channel, now_iso(), actor(), action, before, after, json.dumps(list(stack)), reason))

    def _latest_version(self, db: sqlite3.Connection, name: str) -> str | None:
        rows = [r[0] for r in db.execute("SELECT version FROM images WHERE name = ? AND status = 'verified'",
                                         (name,))]
        return max(rows, key=versions.parse) if rows else None

    def _all_channels(self, db: sqlite3.Connection, names: set[str]) -> dict[tuple[str, str], str | None]:
        state: dict[tuple[str, str], str | None] = {}
        for name in names:
            state[(name, LATEST)] = self._latest_version(db, name)
            for (channel,) in db.execute("SELECT DISTINCT channel FROM channel_events WHERE name = ?", (name,)):
                state[(name, channel)] = self._effective(db, name, self._stack(db, name, channel))
        return state

    def _moves(self, db: sqlite3.Connection, before: Mapping[tuple[str, str], str | None], action: str,
               reason: str) -> list[Move]:
        after = self._all_channels(db, {n for n, _ in before})
        moves = []
        for (name, channel), old in sorted(before.items()):
            new = after.get((name, channel))
            if old != new:
                moves.append(Move(name, channel, old, new))
                if channel != LATEST:
                    self._event(db, name, channel, action, old, new, self._stack(db, name, channel), reason)
        return moves

    # -- reads ------------------------------------------------------------------------

    def versions(self, name: str | None = None) -> list[ImageRecord]:
        """Every recorded version (of ``name``), ordered by name then version."""
        where, args = (" WHERE name = ?", (name,)) if name else ("", ())
        return self._records(where, args)

    def _records(self, where: str, args: Sequence[object]) -> list[ImageRecord]:
        cur = self._conn.execute("SELECT * FROM images" + where, tuple(args))
        cols = [d[0] for d in cur.description]
        rows = [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
        arts: dict[int, list[Artifact]] = {}
        if rows:
            ids = [r["id"] for r in rows]
            for i in range(0, len(ids), 900):
                chunk = ids[i:i + 900]
                for image_id, target, region, art_id, path in self._conn.execute(
                        f"SELECT * FROM artifacts WHERE image_id IN ({','.join('?' * len(chunk))})", chunk):
                    arts.setdefault(image_id, []).append(Artifact(target=target, id=art_id, region=region, path=path))
        records = [ImageRecord(
            name=r["name"], version=r["version"], status=r["status"],
            parent=(r["parent_name"], r["parent_version"]) if r["parent_name"] else None,
            fingerprint=r["fingerprint"], git_commit=r["git_commit"], git_dirty=bool(r["git_dirty"]),
            created_at=r["created_at"], run_id=r["run_id"], log_dir=r["log_dir"], report=r["report"],
            artifacts=tuple(arts.get(r["id"], ())), inputs=json.loads(r["inputs"] or "{}")) for r in rows]
        return sorted(records, key=lambda rec: (rec.name, rec.key))

    def get(self, name: str, version: str) -> ImageRecord:
        """One version; CatalogError when it does not exist."""
        found = self._records(" WHERE name = ? AND version = ?", (name, version))
        if not found:
            raise CatalogError(f"no such image version {name}@{version}", hint=f"see invoke catalog.list {name}")
        return found[0]

    def latest(self, name: str) -> ImageRecord | None:
        """The newest verified (and not revoked) version of ``name``."""
        version = self._latest_version(self._conn, name)
        return self.get(name, version) if version else None

    def with_key(self, name: str, fingerprint: str) -> ImageRecord | None:
        """The newest verified version of ``name`` baked from exactly these inputs."""
        found = self._records(" WHERE name = ? AND fingerprint = ? AND status = 'verified'", (name, fingerprint))
        return found[-1] if found else None

    def channel(self, name: str, channel: str = LATEST) -> str | None:
        """The version ``channel`` of ``name`` points at now, or None."""
        if channel == LATEST:
            return self._latest_version(self._conn, name)
        return self._effective(self._conn, name, self._stack(self._conn, name, channel))

    def channels(self, name: str) -> dict[str, str | None]:
        """Every channel of ``name`` and where it points (latest included)."""
        return {ch: v for (_, ch), v in sorted(self._all_channels(self._conn, {name}).items())}

    def channel_history(self, name: str, channel: str) -> list[ChannelEvent]:
        """Every move of one channel, oldest first."""
        return [ChannelEvent(name, channel, at, who, action, f, t, reason) for at, who, action, f, t, reason in
                self._conn.execute("SELECT at, who, action, from_version, to_version, reason FROM channel_events"
                                   " WHERE name = ? AND channel = ? ORDER BY id", (name, channel))]

    def status_history(self, name: str, version: str) -> list[dict[str, Any]]:
        """Every status change of a version, oldest first."""
        image_id = self._id(self._conn, name, version)
        return [{"at": at, "who": who, "from": f, "to": t, "reason": reason} for at, who, f, t, reason in
                self._conn.execute("SELECT at, who, from_status, to_status, reason FROM status_history"
                                   " WHERE image_id = ? ORDER BY rowid", (image_id,))]

    def packages(self, name: str, version: str) -> list[dict[str, str]]:
        """The recorded package manifest of a version, sorted by name."""
        image_id = self._id(self._conn, name, version)
        return [{"name": n, "version": v, "architecture": a} for n, v, a in self._conn.execute(
            "SELECT name, version, architecture FROM packages WHERE image_id = ? ORDER BY name, architecture",
            (image_id,))]

    def last_verification(self, name: str, version: str) -> dict[str, Any] | None:
        """The newest verification of a version."""
        row = self._conn.execute("SELECT at, spec_digest, ok, report FROM verifications WHERE image_id = ?"
                                 " ORDER BY rowid DESC LIMIT 1", (self._id(self._conn, name, version),)).fetchone()
        return {"at": row[0], "spec_digest": row[1], "ok": bool(row[2]), "report": row[3]} if row else None

    def resolve(self, name: str, *, channel: str = LATEST, target: str = "local",
                region: str | None = None) -> Artifact:
        """The artifact deploy tooling should use for ``name`` on ``channel``, ``target`` and ``region``."""
        check_channel(channel)
        exists = self._conn.execute("SELECT 1 FROM images WHERE name = ? LIMIT 1", (name,)).fetchone()
        if not exists:
            raise CatalogError(f"no image called {name!r} in the catalog")
        version = self.channel(name, channel)
        if version is None:
            known = [c for c, v in self.channels(name).items() if v]
            raise CatalogError(f"{name} has no version on channel {channel!r}",
                               hint=f"channels with a version: {', '.join(known) or 'none'}")
        rec = self.get(name, version)
        art = rec.artifact(target, region)
        if art is None:
            where = f"{target}" + (f" in {region}" if region else "")
            raise CatalogError(f"{rec.ref} ({channel}) has no artifact on {where}")
        return art

    def export(self) -> dict[str, Any]:
        """The whole catalog in the documented JSON shape."""
        records = self.versions()
        histories: dict[int, list[dict[str, Any]]] = {}
        for image_id, at, who, f, t, reason in self._conn.execute("SELECT * FROM status_history ORDER BY rowid"):
            histories.setdefault(image_id, []).append({"at": at, "who": who, "from": f, "to": t, "reason": reason})
        packages: dict[int, list[dict[str, str]]] = {}
        for image_id, n, v, a in self._conn.execute("SELECT * FROM packages ORDER BY image_id, name, architecture"):
            packages.setdefault(image_id, []).append({"name": n, "version": v, "architecture": a})
        ids = {(n, v): i for i, n, v in self._conn.execute("SELECT id, name, version FROM images")}
        children: dict[tuple[str, str], list[str]] = {}
        for rec in records:
            if rec.parent:
                children.setdefault(rec.parent, []).append(rec.ref)
        images = []
        for rec in records:
            doc = rec.to_json()
            image_id = ids[(rec.name, rec.version)]
            doc["children"] = children.get((rec.name, rec.version), [])
            doc["status_history"] = histories.get(image_id, [])
            doc["packages"] = packages.get(image_id, [])
            images.append(doc)
        channels: dict[str, dict[str, str]] = {}
        history: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for name in sorted({r.name for r in records}):
            for channel, version in self.channels(name).items():
                if version:
                    channels.setdefault(name, {})[channel] = version
                if channel != LATEST:
                    history.setdefault(name, {})[channel] = [e.to_json() for e in
                                                             self.channel_history(name, channel)]
        return {"schema_version": SCHEMA_VERSION, "images": images, "channels": channels,
                "channel_history": history}


SCHEMA_PATH = Path(__file__).parent / "schema" / "catalog-v1.schema.json"


def validate(doc: Mapping[str, Any]) -> None:
    """Check an export against the published JSON Schema; CatalogError names the first problem."""
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(root)"
        raise CatalogError(f"export does not match {SCHEMA_PATH.name} at {where}: {first.message}")


def dumps(doc: Mapping[str, Any]) -> str:
    """JSON text of an export."""
    return json.dumps(doc, indent=2)


def render_list(records: Sequence[ImageRecord]) -> str:
    """A table of versions for people (``invoke catalog.list``)."""
    if not records:
        return "no images recorded yet (invoke bake IMAGE)"
    body = []
    for r in records:
        art = r.artifact("local") or (r.artifacts[0] if r.artifacts else None)
        body.append((r.name, r.version, r.status, f"{r.parent[0]}@{r.parent[1]}" if r.parent else "-",
                     r.created_at, art.id[:19] if art else "-"))
    return grid(("IMAGE", "VERSION", "STATUS", "PARENT", "CREATED", "ARTIFACT"), body)
