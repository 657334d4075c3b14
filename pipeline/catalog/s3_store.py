"""The catalog as one JSON document in S3, shared by a team's Jenkins jobs and laptops.

The document is the public export (``schema_version`` 1: deploy tooling can read
``channels`` and ``images`` straight from S3) plus a ``state`` section with the
rows Kiln needs to keep working on it. A read loads the document into an
in-memory SQLite catalog and answers from it. A write does the same, applies
the change, and puts the document back only if the object is unchanged
(``IfMatch`` with the ETag, ``IfNoneMatch: *`` when it does not exist yet); a
conflicting writer makes it retry from a fresh read, so no update is lost.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

from pipeline.catalog import schema
from pipeline.catalog.export import export
from pipeline.catalog.s3_leases import S3Leases
from pipeline.errors import CatalogError

T = TypeVar("T")
CONFLICT_CODES = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")


class S3Store:
    """A ``CatalogStore`` on one S3 object, updated with optimistic locking."""

    def __init__(self, client: Any, bucket: str, key: str, *, attempts: int = 40) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
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

    def write(self, change: Callable[[sqlite3.Connection], T]) -> T:
        """Apply ``change`` to a fresh copy and put it back unless someone else wrote first; then retry."""
        for attempt in range(self.attempts):
            conn, etag = self._load()
            try:
                before = schema.dump(conn)
                conn.execute("BEGIN")
                result = change(conn)
                conn.execute("COMMIT")
                after = schema.dump(conn)
                if after == before or self._put({**export(conn), "state": after}, etag):
                    return result
            finally:
                conn.close()
            self.conflicts += 1
            time.sleep(random.uniform(0, min(0.05 * 2 ** min(attempt, 5), 1.0)))
        raise CatalogError(f"{self.location}: gave up after {self.attempts} conflicting writes",
                           hint="another writer keeps updating the catalog; try again")

    def close(self) -> None:
        """Nothing is held open between calls."""

    def _load(self) -> tuple[sqlite3.Connection, str | None]:
        from botocore.exceptions import ClientError

        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404"):
                return schema.memory(), None
            if code == "NoSuchBucket":
                raise CatalogError(f"{self.location}: bucket {self.bucket} does not exist",
                                   hint="create it, or set [aws] catalog_bucket in kiln.toml") from None
            raise CatalogError(f"{self.location}: cannot read the catalog ({code})") from None
        try:
            doc = json.loads(obj["Body"].read())
        except json.JSONDecodeError as exc:
            raise CatalogError(f"{self.location}: the catalog document is not JSON ({exc})",
                               hint="restore a previous version of the object") from None
        return schema.memory(doc.get("state")), obj["ETag"]

    def _put(self, doc: dict[str, Any], etag: str | None) -> bool:
        from botocore.exceptions import ClientError

        body = json.dumps(doc, separators=(",", ":")).encode()
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key, Body=body, ContentType="application/json",
                                   **condition)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in CONFLICT_CODES:
                return False
            raise CatalogError(f"{self.location}: cannot write the catalog ({code})") from None
        return True
