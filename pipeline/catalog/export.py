"""The catalog as one JSON document: the export deploy tooling reads, and its published schema.

The shape (``schema_version`` 1, ``pipeline/schema/catalog-v1.schema.json``) is
a contract: later versions add fields but never remove or rename one.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.catalog.queries import channel_history, channels, records
from pipeline.catalog.records import LATEST
from pipeline.errors import CatalogError

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema" / "catalog-v1.schema.json"


def _by_image(db: sqlite3.Connection, sql: str, row: Any) -> dict[int, list[dict[str, Any]]]:
    found: dict[int, list[dict[str, Any]]] = {}
    for owner, *rest in db.execute(sql):
        found.setdefault(owner, []).append(row(*rest))
    return found


def export(db: sqlite3.Connection) -> dict[str, Any]:
    """The whole catalog in the documented JSON shape."""
    versions = records(db)
    histories = _by_image(db, "SELECT * FROM status_history ORDER BY rowid",
                          lambda at, who, f, t, reason: {"at": at, "who": who, "from": f, "to": t, "reason": reason})
    packages = _by_image(db, "SELECT * FROM packages ORDER BY image_id, name, architecture",
                         lambda n, v, a: {"name": n, "version": v, "architecture": a})
    ids = {(n, v): i for i, n, v in db.execute("SELECT id, name, version FROM images")}
    children: dict[tuple[str, str], list[str]] = {}
    for rec in versions:
        if rec.parent:
            children.setdefault(rec.parent, []).append(rec.ref)
    images = []
    for rec in versions:
        owner = ids[(rec.name, rec.version)]
        images.append({**rec.to_json(), "children": children.get((rec.name, rec.version), []),
                       "status_history": histories.get(owner, []), "packages": packages.get(owner, [])})
    pointers: dict[str, dict[str, str]] = {}
    history: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name in sorted({r.name for r in versions}):
        for channel, version in channels(db, name).items():
            if version:
                pointers.setdefault(name, {})[channel] = version
            if channel != LATEST:
                history.setdefault(name, {})[channel] = [e.to_json() for e in channel_history(db, name, channel)]
    return {"schema_version": SCHEMA_VERSION, "images": images, "channels": pointers, "channel_history": history}


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
