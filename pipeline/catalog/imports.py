"""Restoring a catalog from its export (``invoke catalog.import FILE``): on purpose, never by accident.

A catalog document deleted or damaged by hand is an error for every command,
never an empty catalog (``s3_store``, ``schema``); this is the one way back.
The file must match the published schema (``export.validate``), and the
catalog it goes into must hold no version unless the import is told to
replace it. Everything an export holds comes back as it was: versions with
their statuses, lineage, artifacts, packages and status histories, and every
named channel's history. A channel's stack of assignments (what a rollback
goes back to) is not in the export; it is rebuilt by replaying the channel's
history, as ``channels`` moved it. Two things are not in the export and do not
come back: the bake inputs behind each key (an imported version's key still
matches the same inputs; a plan names the inputs that changed only against a
version baked after the import) and the spec digests of verifications (a
change to the specs made before the import does not call for a re-verify).
The catalog's own id, its lease generations and its applied change ids stay
the importing catalog's.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from pipeline.catalog import pending, schema
from pipeline.errors import CatalogError

KEPT = ("meta", "fences", "changes")  # its own id (AMIs are tagged with it), lease generations, applied changes


def restore(db: sqlite3.Connection, doc: Mapping[str, Any], *, replace: bool, mirrored_by: str | None) -> int:
    """Load an export (already validated) into ``db``; the number of versions. Refused when ``db`` holds
    versions and ``replace`` is false. On a target that mirrors channels (``mirrored_by``), every image is
    marked publish pending: where deployers read them is put right by the next publish or reconcile."""
    held = db.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    if held and not replace:
        raise CatalogError(f"the catalog already holds {held} version(s); nothing was imported",
                           hint="export it first (invoke catalog.export > before.json), then import with --replace")
    for table in reversed(schema.TABLES):  # rows that name a version go before it
        if table not in KEPT:
            db.execute(f"DELETE FROM {table}")  # noqa: S608 - table names are the schema's own
    for image in doc["images"]:
        owner = _image(db, image)
        for art in image["artifacts"]:
            db.execute("INSERT INTO artifacts VALUES (?,?,?,?,?)",
                       (owner, art["target"], art.get("region"), art["id"], art.get("path")))
        for h in image["status_history"]:
            db.execute("INSERT INTO status_history VALUES (?,?,?,?,?,?)",
                       (owner, h["at"], h["who"], h.get("from"), h["to"], h.get("reason")))
        for p in image["packages"]:
            db.execute("INSERT INTO packages VALUES (?,?,?,?)", (owner, p["name"], p["version"], p["architecture"]))
    for name, channels in doc["channel_history"].items():
        for channel, events in channels.items():
            _replay(db, name, channel, events)
    if mirrored_by:
        pending.mark(db, {i["name"] for i in doc["images"]}, mirrored_by, "imported from an export")
    return len(doc["images"])


def _image(db: sqlite3.Connection, image: Mapping[str, Any]) -> int:
    """One version's row; its id."""
    parent = image.get("parent") or {}
    git = image["git"]
    cur = db.execute(
        "INSERT INTO images (name, version, status, parent_name, parent_version, fingerprint, inputs, git_commit,"
        " git_dirty, created_at, run_id, log_dir, report) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (image["name"], image["version"], image["status"], parent.get("name"), parent.get("version"),
         image["fingerprint"], "{}", git["commit"], int(git["dirty"]), image["created_at"], image["run_id"],
         image["log_dir"], image.get("report")))
    return int(cur.lastrowid or 0)


def _replay(db: sqlite3.Connection, name: str, channel: str, events: list[Mapping[str, Any]]) -> None:
    """A named channel's events, each with the stack it left: a promote pushes its version, a rollback pops
    back past the version it moved from; revokes and restores move the channel without changing its stack."""
    assigned: list[str] = []
    for e in events:
        if e["action"] == "promote" and e.get("to"):
            assigned.append(e["to"])
        elif e["action"] == "rollback" and e.get("from") in assigned:
            while assigned[-1] != e["from"]:
                assigned.pop()
            assigned.pop()
        db.execute("INSERT INTO channel_events (name, channel, at, who, action, from_version, to_version, stack,"
                   " reason) VALUES (?,?,?,?,?,?,?,?,?)",
                   (name, channel, e["at"], e["who"], e["action"], e.get("from"), e.get("to"),
                    json.dumps(assigned), e.get("reason")))


def read(text: str, where: str) -> dict[str, Any]:
    """The export in ``text`` (from ``where``), parsed and checked against the schema."""
    from pipeline.catalog.export import validate

    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{where}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}",
                           hint="give a file written by invoke catalog.export") from None
    try:
        validate(doc)
    except CatalogError as exc:
        raise CatalogError(f"{where}: {exc.message}", hint="give a file written by invoke catalog.export "
                                                          "(schema_version 1), unedited") from None
    return doc
