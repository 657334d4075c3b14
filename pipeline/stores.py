"""Catalog stores: one interface (``pipeline.catalog.Catalog``'s methods), two homes.

- ``local`` — a SQLite file; each method is one SQLite transaction.
- ``s3`` — one JSON document in a bucket, shared by a team's Jenkins jobs. Each
  write reads the document and its ETag, applies the same ``Catalog`` method to
  an in-memory copy, and writes it back only if the object is unchanged
  (``IfMatch`` with the ETag, ``IfNoneMatch: *`` when it does not exist yet);
  a conflicting writer makes it retry from a fresh read, so no update is lost.

The document is the public export (``schema_version`` 1: deploy tooling can read
``channels`` and ``images`` straight from S3) plus a ``state`` section with the
rows Kiln needs to keep working on it.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

from pipeline.catalog import Catalog
from pipeline.errors import CatalogError

READS = frozenset({
    "versions", "get", "latest", "with_key", "channel", "channels", "channel_history", "status_history",
    "packages", "last_verification", "resolve", "export", "dump",
})


class S3Catalog:
    """The catalog as one S3 object, updated with optimistic locking."""

    def __init__(self, client: Any, bucket: str, key: str, *, attempts: int = 40) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.attempts = attempts
        self.path = f"s3://{bucket}/{key}"
        self.conflicts = 0

    def __enter__(self) -> S3Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing is held open between calls."""

    def _read(self) -> tuple[Catalog, str | None]:
        from botocore.exceptions import ClientError

        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404"):
                return Catalog.memory(), None
            if code == "NoSuchBucket":
                raise CatalogError(f"{self.path}: bucket {self.bucket} does not exist",
                                   hint="create it, or set [aws] catalog_bucket in kiln.toml") from None
            raise CatalogError(f"{self.path}: cannot read the catalog ({code})") from None
        try:
            doc = json.loads(obj["Body"].read())
        except json.JSONDecodeError as exc:
            raise CatalogError(f"{self.path}: the catalog document is not JSON ({exc})",
                               hint="restore a previous version of the object") from None
        return Catalog.memory(doc.get("state")), obj["ETag"]

    def _write(self, cat: Catalog, etag: str | None) -> bool:
        from botocore.exceptions import ClientError

        body = json.dumps({**cat.export(), "state": cat.dump()}, separators=(",", ":")).encode()
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key, Body=body, ContentType="application/json",
                                   **condition)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                return False
            raise CatalogError(f"{self.path}: cannot write the catalog ({code})") from None
        return True

    def _call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        for attempt in range(self.attempts):
            cat, etag = self._read()
            try:
                before = cat.dump() if method not in READS else None
                result = getattr(cat, method)(*args, **kwargs)
                if before is None or cat.dump() == before:
                    return result
                if self._write(cat, etag):
                    return result
            finally:
                cat.close()
            self.conflicts += 1
            time.sleep(random.uniform(0, min(0.05 * 2 ** min(attempt, 5), 1.0)))
        raise CatalogError(f"{self.path}: gave up after {self.attempts} conflicting writes",
                           hint="another writer keeps updating the catalog; try again")

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_") or not callable(getattr(Catalog, name, None)):
            raise AttributeError(name)
        return lambda *args, **kwargs: self._call(name, *args, **kwargs)
