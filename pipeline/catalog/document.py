"""The S3 catalog's document: what it must look like before Kiln reads it, or writes over it.

The document is the public export (deploy tooling reads ``channels`` and
``images`` straight from S3) plus ``state``: every row Kiln needs, in the
catalog's format. A document without that state is never read as an empty
catalog, because the next write would replace everything it held: an object
restored by hand from ``invoke catalog.export``, ``{}``, ``{"state": []}``, a
list, a string or a newer format is an error that names the object and says how
to restore it, and every write refuses it too.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from pipeline.catalog import schema
from pipeline.catalog.export import export
from pipeline.errors import CatalogError

RESTORE = ("restore a previous version of the object (S3 versioning), or delete it and invoke catalog.import FILE "
           "with an export; Kiln left it as it is")


class Damaged(CatalogError):
    """The object is there but holds no catalog Kiln can read."""


def state_of(body: bytes, location: str) -> Mapping[str, Any]:
    """The ``state`` of a catalog document, checked for its shape; Damaged (or CatalogError for a newer
    format) saying what the object holds instead."""
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        what = "empty" if not body.strip() else f"not JSON ({exc})"
        raise Damaged(f"{location}: the catalog document is {what}", hint=RESTORE) from None
    if not isinstance(doc, dict):
        raise Damaged(f"{location}: the catalog document is a JSON {type(doc).__name__}, not an object",
                      hint=RESTORE)
    state = doc.get("state")
    if state is None:
        what = ("an export (invoke catalog.export), not the catalog's own document" if "schema_version" in doc
                else "not a Kiln catalog (it has no state)")
        raise Damaged(f"{location}: the object is {what}", hint=RESTORE)
    if not isinstance(state, dict) or not isinstance(state.get("tables"), dict) \
            or not isinstance(state.get("format"), int):
        raise Damaged(f"{location}: the catalog document's state is damaged (it needs a format and tables)",
                      hint=RESTORE)
    if state["format"] > schema.DB_VERSION:
        raise CatalogError(f"{location}: catalog format {state['format']} is newer than this Kiln "
                           f"({schema.DB_VERSION})", hint="upgrade Kiln; the document was left as it is")
    return state


def load(body: bytes, location: str) -> sqlite3.Connection:
    """The document as an in-memory catalog."""
    return schema.memory(state_of(body, location), location)


def render(conn: sqlite3.Connection) -> bytes:
    """The document of an in-memory catalog: the export, and the state."""
    return json.dumps({**export(conn), "state": schema.dump(conn)}, separators=(",", ":")).encode()
