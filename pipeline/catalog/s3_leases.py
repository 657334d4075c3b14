"""Bake leases beside the S3 catalog document: one small object per lease, like Terraform's S3 lock file.

``s3://BUCKET/KEY.leases/TARGET/IMAGE/KEYHEX.json`` holds the holder. A claim
writes it only if it does not exist (``IfNoneMatch: *``), or, when the lease
there has expired, only if it is still the expired one (``IfMatch`` with its
ETag): of two machines claiming at once, exactly one wins. A renewal is a
conditional write too, retried from a fresh read on conflict.

Expiry is judged by S3's clock alone: a lease expired when the server's
``Date`` is past the object's ``LastModified`` plus the lease's time to live.
No machine's clock takes part, so a skewed agent can neither steal a live
lease nor keep a dead one.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from email.utils import parsedate_to_datetime
from typing import Any

from pipeline.catalog.leases import Lease, LeaseLost
from pipeline.errors import CatalogError, cloud_error

CONFLICT_CODES = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")


class S3Leases:
    """The ``LeaseBook`` of an S3 catalog document."""

    def __init__(self, client: Any, bucket: str, key: str, *, attempts: int = 20) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = f"{key}.leases/"
        self.attempts = attempts
        self.conflicts = 0

    def _key(self, lease: Lease) -> str:
        return f"{self.prefix}{lease.target}/{lease.image}/{lease.key.split(':', 1)[-1]}.json"

    def _get(self, key: str) -> tuple[Lease | None, str | None, bool, float]:
        """The lease at ``key``, its ETag, whether it expired, and the server's time now."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None, None, False, server_time(exc.response)
            raise cloud_error(f"s3://{self.bucket}/{key}", "cannot read the lease", exc) from None
        except BotoCoreError as exc:
            raise cloud_error(f"s3://{self.bucket}/{key}", "cannot read the lease", exc) from None
        body = json.loads(obj["Body"].read())
        now = server_time(obj)
        ttl = float(body.pop("ttl"))
        lease = Lease(**body)
        return lease, obj["ETag"], now > obj["LastModified"].timestamp() + ttl, now

    def _put(self, key: str, lease: Lease, ttl: float, etag: str | None) -> bool:
        """True when written; False on a conflict, or when the reply was lost (the caller reads the object
        again: a lease that landed is this run's, by its run id, and is simply written once more)."""
        from botocore.exceptions import BotoCoreError, ClientError

        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        body = json.dumps({**asdict(lease), "ttl": ttl}).encode()
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json",
                                   **condition)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in CONFLICT_CODES or code == "NoSuchKey":
                self.conflicts += 1
                return False
            raise cloud_error(f"s3://{self.bucket}/{key}", "cannot write the lease", exc) from None
        except BotoCoreError:
            self.conflicts += 1
            return False
        return True

    def claim(self, want: Lease, ttl: float) -> tuple[Lease, Lease | None]:
        """Write ``want`` if no lease is there, or over an expired one if it is still that one."""
        key = self._key(want)
        for _ in range(self.attempts):
            there, etag, expired, now = self._get(key)
            if there is not None and not there.ours(want) and not expired:
                return there, None
            mine = replace(want, taken_at=now, expires_at=now + ttl)
            if self._put(key, mine, ttl, etag):
                return mine, there if there is not None and not there.ours(want) else None
        raise CatalogError(f"s3://{self.bucket}/{key}: gave up claiming after {self.attempts} conflicting writes")

    def renew(self, lease: Lease, ttl: float) -> Lease:
        """Rewrite the object if it is still this run's lease, from a fresh read after each conflict."""
        key = self._key(lease)
        for _ in range(self.attempts):
            there, etag, _, now = self._get(key)
            if there is None or not there.ours(lease):
                raise LeaseLost(f"lost the lease on {lease.subject}"
                                + (f" to {there.holder}" if there else " (it was removed)"))
            renewed = replace(there, expires_at=now + ttl)
            if self._put(key, renewed, ttl, etag):
                return renewed
        raise CatalogError(f"s3://{self.bucket}/{key}: gave up renewing after {self.attempts} conflicting writes")

    def release(self, lease: Lease) -> None:
        """Delete the lease object while it is still this run's and live (an expired one may be another
        machine's by the time a delete lands: it is left to be taken over)."""
        key = self._key(lease)
        there, _, expired, _ = self._get(key)
        if there is not None and there.ours(lease) and not expired:
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def live(self) -> list[Lease]:
        """Every lease object below the prefix that has not expired by S3's clock."""
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                lease, _, expired, _ = self._get(item["Key"])
                if lease is not None and not expired:
                    found.append(lease)
        return sorted(found, key=lambda lease: (lease.image, lease.target, lease.taken_at))


def server_time(response: dict[str, Any]) -> float:
    """The S3 server's clock, from a response's ``Date`` header. S3 always sends one; only a response
    without it (a stand-in of S3 that omits it) falls back to this machine's clock."""
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    return parsedate_to_datetime(date).timestamp() if date else time.time()
