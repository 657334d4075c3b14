"""The catalog's tables, the SQLite settings every connection gets, and the format's version.

The file format is versioned with ``PRAGMA user_version``: a newer file is
refused (never rewritten by an older Kiln), an older one is brought up to date
with idempotent DDL, so two processes creating one catalog at once both
succeed. A store that is not a file (the S3 document) keeps the same rows as
``dump()`` and loads them into an in-memory database.

Format 2 added four small tables: ``meta`` (the catalog's own id, which every
AMI it records is tagged with, so no other catalog's janitor takes it for its
own), ``changes`` (the ids of changes already applied, so a change retried
after a lost reply is applied once), ``fences`` (each bake lease's generation:
a write of a bake whose lease was taken over is refused) and ``pending`` (images
whose channels moved in the catalog but are not yet published where deployers
read them).
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.errors import CatalogError, CatalogMissing

TABLES = ("images", "artifacts", "status_history", "channel_events", "packages", "verifications", "meta", "changes",
          "fences", "pending")
DB_VERSION = 2

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
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS changes (
    id  TEXT PRIMARY KEY,
    at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fences (
    image      TEXT NOT NULL,
    key        TEXT NOT NULL,
    target     TEXT NOT NULL,
    generation INTEGER NOT NULL,
    PRIMARY KEY (image, key, target)
);
CREATE TABLE IF NOT EXISTS pending (
    name   TEXT NOT NULL,
    target TEXT NOT NULL,
    since  TEXT NOT NULL,
    token  TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (name, target)
);
"""


def connect(path: Path, *, create: bool = True) -> sqlite3.Connection:
    """Open the catalog file at ``path`` (creating it unless ``create`` is false), WAL and full sync."""
    if not path.exists() and not create:
        raise CatalogMissing(f"no catalog at {path}", hint="bake an image first (invoke bake IMAGE)")
    if path.exists() and not os.access(path, os.R_OK):
        raise CatalogError(f"{path}: catalog is not readable", hint="check its owner and permissions")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=120, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=120000")
        if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        migrate(conn, path)
    except sqlite3.DatabaseError as exc:
        raise CatalogError(f"{path}: unreadable catalog ({exc})",
                           hint="restore it from a backup or an export; Kiln never overwrites it") from None
    return conn


def migrate(conn: sqlite3.Connection, where: object) -> None:
    """Bring the tables up to this Kiln's format; refuse a newer one."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > DB_VERSION:
        raise CatalogError(f"{where}: catalog format {current} is newer than this Kiln ({DB_VERSION})",
                           hint="upgrade Kiln")
    if current < DB_VERSION:
        conn.executescript(_DDL + f"PRAGMA user_version={DB_VERSION};")
        identify(conn)


def identify(conn: sqlite3.Connection) -> str:
    """The catalog's own id, made once (of two processes creating it at once, the first one's stays)."""
    conn.execute("INSERT OR IGNORE INTO meta VALUES ('catalog_id', ?)", (str(uuid.uuid4()),))
    return str(conn.execute("SELECT value FROM meta WHERE key = 'catalog_id'").fetchone()[0])


def catalog_id(conn: sqlite3.Connection) -> str:
    """The id every AMI this catalog records is tagged with (``kiln:catalog``)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'catalog_id'").fetchone()
    return str(row[0]) if row else ""


def memory(state: Mapping[str, Any] | None = None, where: object = ":memory:") -> sqlite3.Connection:
    """An in-memory catalog, loaded from a ``dump()`` of this format or an older one (CatalogError naming
    ``where`` when the rows do not fit)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    conn.executescript(_DDL + f"PRAGMA user_version={DB_VERSION};")
    if state:
        conn.execute("BEGIN")
        try:
            for table in TABLES:
                rows = state["tables"].get(table, [])
                if rows:
                    marks = ",".join("?" * len(rows[0]))
                    conn.executemany(f"INSERT INTO {table} VALUES ({marks})", [tuple(r) for r in rows])
        except (sqlite3.Error, TypeError, AttributeError) as exc:
            conn.close()
            raise CatalogError(f"{where}: the catalog's rows are damaged ({exc})",
                               hint="restore a previous version of it or a backup; Kiln left it as it is") from None
        conn.execute("COMMIT")
    identify(conn)
    return conn


def dump(conn: sqlite3.Connection) -> dict[str, Any]:
    """Every row of every table: the lossless form a remote store keeps."""
    tables = {table: [list(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY rowid")] for table in TABLES}
    return {"format": DB_VERSION, "tables": tables}
