"""The image catalog: every baked version, its status, lineage and artifacts.

A SQLite file is the local store. Each write is one transaction (``BEGIN
IMMEDIATE``), so concurrent writers queue instead of losing updates, and WAL
journaling keeps the file whole if a writer is killed mid-write.

The export shape (``schema_version`` 1) is a contract with deploy tooling:
later versions add fields but never remove or rename one.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline import versions
from pipeline.errors import CatalogError
from pipeline.progress import grid

SCHEMA_VERSION = 1
STATUSES = ("building", "verified", "failed", "interrupted", "deleted")

_DDL = """
CREATE TABLE IF NOT EXISTS images (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL,
    version         TEXT NOT NULL,
    status          TEXT NOT NULL,
    parent_name     TEXT,
    parent_version  TEXT,
    fingerprint     TEXT NOT NULL,
    git_commit      TEXT NOT NULL,
    git_dirty       INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    log_dir         TEXT NOT NULL,
    report          TEXT,
    UNIQUE (name, version)
);
CREATE TABLE IF NOT EXISTS artifacts (
    image_id    INTEGER NOT NULL REFERENCES images(id),
    target      TEXT NOT NULL,
    region      TEXT,
    artifact_id TEXT NOT NULL,
    path        TEXT,
    UNIQUE (image_id, target, region)
);
CREATE INDEX IF NOT EXISTS images_by_name ON images(name, status);
"""


@dataclass(frozen=True)
class Artifact:
    """Where a version lives on one target (a qcow2 locally, an AMI per region on AWS)."""

    target: str
    id: str
    region: str | None = None
    path: str | None = None


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

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    def artifact(self, target: str = "local", region: str | None = None) -> Artifact | None:
        """This version's artifact on ``target`` (and ``region``), if any."""
        for art in self.artifacts:
            if art.target == target and (region is None or art.region == region):
                return art
        return None

    def to_json(self) -> dict[str, Any]:
        """The export shape of one image version."""
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
            "artifacts": [{"target": a.target, "region": a.region, "id": a.id, "path": a.path}
                          for a in self.artifacts],
        }


def now_iso() -> str:
    """UTC timestamp with a Z, second precision."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Catalog:
    """The SQLite catalog. Open with ``Catalog.open(path)``; use as a context manager."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path, *, create: bool = True) -> Catalog:
        """Open (and create, unless ``create`` is false) the catalog at ``path``."""
        if not path.exists() and not create:
            raise CatalogError(f"no catalog at {path}", hint="bake an image first (invoke bake IMAGE)")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(path, timeout=60, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.executescript(_DDL)
        except sqlite3.DatabaseError as exc:
            raise CatalogError(f"{path}: unreadable catalog ({exc})",
                               hint="restore it from a backup or an export; Kiln never overwrites it") from None
        return cls(conn, path)

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

    # -- writes -------------------------------------------------------------

    def begin_bake(self, *, name: str, parent: tuple[str, str] | None, fingerprint: str,
                   git_commit: str, git_dirty: bool, run_id: str, log_dir: str,
                   clock: versions.Clock = versions.utcnow) -> str:
        """Allocate a new version of ``name`` and record it as ``building``."""
        with self.transaction() as db:
            taken = [r[0] for r in db.execute("SELECT version FROM images WHERE name = ?", (name,))]
            version = versions.next_version(taken, clock)
            db.execute(
                "INSERT INTO images (name, version, status, parent_name, parent_version, fingerprint,"
                " git_commit, git_dirty, created_at, run_id, log_dir) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (name, version, "building", parent[0] if parent else None, parent[1] if parent else None,
                 fingerprint, git_commit, int(git_dirty), now_iso(), run_id, log_dir))
        return version

    def add_artifact(self, name: str, version: str, artifact: Artifact) -> None:
        """Attach (or replace) the artifact of a version on one target/region."""
        with self.transaction() as db:
            image_id = self._id(db, name, version)
            db.execute("DELETE FROM artifacts WHERE image_id = ? AND target = ? AND region IS ?",
                       (image_id, artifact.target, artifact.region))
            db.execute("INSERT INTO artifacts VALUES (?,?,?,?,?)",
                       (image_id, artifact.target, artifact.region, artifact.id, artifact.path))

    def set_status(self, name: str, version: str, status: str, *, report: str | None = None) -> None:
        """Move a version to ``status`` (one of STATUSES)."""
        if status not in STATUSES:
            raise CatalogError(f"unknown status {status!r}")
        with self.transaction() as db:
            image_id = self._id(db, name, version)
            db.execute("UPDATE images SET status = ?, report = COALESCE(?, report) WHERE id = ?",
                       (status, report, image_id))

    def set_log_dir(self, name: str, version: str, log_dir: str) -> None:
        """Record where a version's logs are."""
        with self.transaction() as db:
            db.execute("UPDATE images SET log_dir = ? WHERE id = ?", (log_dir, self._id(db, name, version)))

    @staticmethod
    def _id(db: sqlite3.Connection, name: str, version: str) -> int:
        row = db.execute("SELECT id FROM images WHERE name = ? AND version = ?", (name, version)).fetchone()
        if row is None:
            raise CatalogError(f"no such image version {name}@{version}", hint="see invoke catalog.list")
        return int(row[0])

    # -- reads --------------------------------------------------------------

    def versions(self, name: str | None = None) -> list[ImageRecord]:
        """Every recorded version (of ``name``), oldest first."""
        sql = "SELECT * FROM images" + (" WHERE name = ?" if name else "")
        rows = self._conn.execute(sql, (name,) if name else ()).fetchall()
        cols = [d[0] for d in self._conn.execute("SELECT * FROM images LIMIT 0").description]
        arts: dict[int, list[Artifact]] = {}
        for image_id, target, region, art_id, path in self._conn.execute("SELECT * FROM artifacts"):
            arts.setdefault(image_id, []).append(Artifact(target=target, id=art_id, region=region, path=path))
        records = []
        for row in rows:
            r = dict(zip(cols, row, strict=True))
            records.append(ImageRecord(
                name=r["name"], version=r["version"], status=r["status"],
                parent=(r["parent_name"], r["parent_version"]) if r["parent_name"] else None,
                fingerprint=r["fingerprint"], git_commit=r["git_commit"], git_dirty=bool(r["git_dirty"]),
                created_at=r["created_at"], run_id=r["run_id"], log_dir=r["log_dir"], report=r["report"],
                artifacts=tuple(arts.get(r["id"], ()))))
        return sorted(records, key=lambda rec: (rec.name, versions.parse(rec.version)))

    def get(self, name: str, version: str) -> ImageRecord:
        """One version; CatalogError when it does not exist."""
        for rec in self.versions(name):
            if rec.version == version:
                return rec
        raise CatalogError(f"no such image version {name}@{version}", hint="see invoke catalog.list")

    def latest(self, name: str) -> ImageRecord | None:
        """The newest verified version of ``name``."""
        verified = [r for r in self.versions(name) if r.status == "verified"]
        return verified[-1] if verified else None

    def export(self) -> dict[str, Any]:
        """The whole catalog in the documented JSON shape."""
        records = self.versions()
        channels: dict[str, dict[str, str]] = {}
        for rec in records:
            if rec.status == "verified":
                channels.setdefault(rec.name, {})["latest"] = rec.version
        return {"schema_version": SCHEMA_VERSION,
                "images": [r.to_json() for r in records],
                "channels": channels}


def dumps(doc: dict[str, Any]) -> str:
    """JSON text of an export, stable key order."""
    return json.dumps(doc, indent=2, sort_keys=False)


def render_list(records: list[ImageRecord]) -> str:
    """A table of versions for people (``invoke catalog.list``)."""
    if not records:
        return "no images recorded yet (invoke bake IMAGE)"
    body = []
    for r in records:
        art = r.artifact("local") or (r.artifacts[0] if r.artifacts else None)
        body.append((r.name, r.version, r.status, f"{r.parent[0]}@{r.parent[1]}" if r.parent else "-",
                     r.created_at, art.id[:19] if art else "-"))
    return grid(("IMAGE", "VERSION", "STATUS", "PARENT", "CREATED", "ARTIFACT"), body)
