"""The catalog as one JSON document in S3, shared by a team's Jenkins jobs and laptops.

The document (``document``) is the public export plus a ``state`` section with
the rows Kiln needs. A read loads it into an in-memory SQLite catalog and
answers from it. A write does the same, applies the change, and puts the
document back only if the object is unchanged (``IfMatch`` with the ETag,
``IfNoneMatch: *`` when it does not exist yet); a conflicting writer makes it
retry from a fresh read, so no update is lost.

Faults it survives:
- **a lost reply**: every change carries an id that is written into the
  document with it. botocore retries a PUT whose reply never came; that retry
  meets 412, and the change would be applied a second time — but the fresh read
  holds its id, so the write is known to have landed and nothing is applied
  twice. An error after the PUT was sent is settled the same way;
- **a missing object**: with ``create=False`` it is an error, never an empty
  catalog; a document that is not a Kiln catalog is never read as one;
- **S3 unreachable or failing**: one line naming the object and the error.
"""

from __future__ import annotations

import random
import sqlite3
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from pipeline.catalog import document, schema
from pipeline.catalog.records import now_iso
from pipeline.catalog.s3_leases import S3Leases
from pipeline.errors import CatalogError, CatalogMissing, cloud_error

T = TypeVar("T")
CONFLICT_CODES = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")
KEEP_CHANGES = 500  # change ids kept in the document: far more than writes in flight at once


class S3Store:
    """A ``CatalogStore`` on one S3 object, updated with optimistic locking and idempotent changes."""

    def __init__(self, client: Any, bucket: str, key: str, *, create: bool = True, attempts: int = 40) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.create = create
        self.attempts = attempts
        self.location = f"s3://{bucket}/{key}"
        self.conflicts = 0
        self.leases = S3Leases(client, bucket, key)

    def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Answer ``query`` from the document as it is now."""
        conn, _ = self._load()
        try:
            return query(conn)
        finally:
            conn.close()

    def exists(self) -> bool:
        """Whether the document is there (whatever it holds)."""
        return self._get() is not None

    def write(self, change: Callable[[sqlite3.Connection], T]) -> T:
        """Apply ``change`` to a fresh copy and put it back unless someone else wrote first; then retry."""
        change_id, sent = uuid.uuid4().hex, None
        for attempt in range(self.attempts):
            conn, etag = self._load()
            try:
                if sent is not None and applied(conn, change_id):
                    return sent[0]  # our put landed; only its reply was lost
                before = schema.dump(conn)
                conn.execute("BEGIN")
                result = change(conn)
                if schema.dump(conn) == before:
                    conn.execute("COMMIT")
                    return result
                remember(conn, change_id)
                conn.execute("COMMIT")
                sent = (result,)
                if self._put(document.render(conn), etag, change_id):
                    return result
            finally:
                conn.close()
            self.conflicts += 1
            time.sleep(random.uniform(0, min(0.05 * 2 ** min(attempt, 5), 1.0)))
        raise CatalogError(f"{self.location}: gave up after {self.attempts} conflicting writes",
                           hint="another writer keeps updating the catalog; try again")

    def close(self) -> None:
        """Nothing is held open between calls."""

    def _get(self) -> tuple[bytes, str] | None:
        """The object's body and ETag, or None when there is none."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self.key)
            return obj["Body"].read(), obj["ETag"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404"):
                return None
            if code == "NoSuchBucket":
                raise CatalogError(f"{self.location}: bucket {self.bucket} does not exist",
                                   hint="create it, or set [aws] catalog_bucket in kiln.toml") from None
            raise cloud_error(self.location, "cannot read the catalog", exc) from None
        except BotoCoreError as exc:
            raise cloud_error(self.location, "cannot read the catalog", exc) from None

    def _load(self) -> tuple[sqlite3.Connection, str | None]:
        """The document as an in-memory catalog, and its ETag (None: there is no object, and may be one)."""
        got = self._get()
        if got is None:
            if not self.create:
                raise CatalogMissing(f"no catalog at {self.location}",
                                     hint="bake an image first (invoke bake IMAGE --target aws), or restore the "
                                          "object from a previous version or a backup")
            return schema.memory(), None
        return document.load(got[0], self.location), got[1]

    def _put(self, body: bytes, etag: str | None, change_id: str) -> bool:
        """True when the document was written; False on a conflict (someone wrote first), unless the document
        now holds ``change_id``: then this very put landed and the conflict was its own retry's."""
        from botocore.exceptions import BotoCoreError, ClientError

        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key, Body=body, ContentType="application/json",
                                   **condition)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in CONFLICT_CODES:
                return False
            if self._holds(change_id):
                return True
            raise cloud_error(self.location, "cannot write the catalog", exc) from None
        except BotoCoreError as exc:
            if self._holds(change_id):
                return True
            raise cloud_error(self.location, "cannot write the catalog", exc) from None
        return True

    def _holds(self, change_id: str) -> bool:
        """Whether the document now holds the change ``change_id`` (settling a put whose reply was an error)."""
        try:
            got = self._get()
            if got is None:
                return False
            conn = document.load(got[0], self.location)
        except CatalogError:
            return False
        try:
            return applied(conn, change_id)
        finally:
            conn.close()


def applied(conn: sqlite3.Connection, change_id: str) -> bool:
    """The change ``change_id`` is in the document already."""
    return conn.execute("SELECT 1 FROM changes WHERE id = ?", (change_id,)).fetchone() is not None


def remember(conn: sqlite3.Connection, change_id: str) -> None:
    """Write the change's id with it, keeping the newest ``KEEP_CHANGES``."""
    conn.execute("INSERT INTO changes VALUES (?, ?)", (change_id, now_iso()))
    conn.execute("DELETE FROM changes WHERE rowid <= (SELECT max(rowid) FROM changes) - ?", (KEEP_CHANGES,))
