"""Bake leases beside the S3 catalog, on the moto server: conditional writes, S3's clock, renewal conflicts."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import boto3
import pytest

from pipeline.catalog import Catalog, Lease, LeaseLost
from pipeline.catalog.s3_store import S3Store

pytestmark = pytest.mark.aws
KEY = "sha256:" + "ab" * 32


def lease(run_id: str, image: str = "app") -> Lease:
    return Lease(image=image, key=KEY, target="aws", actor=f"ci-{run_id}", host="agent", run_id=run_id)


def s3() -> Any:
    return boto3.client("s3", region_name="us-east-1")


@pytest.fixture
def catalog(aws: str) -> Catalog:
    s3().create_bucket(Bucket="team-catalog")
    return Catalog(S3Store(s3(), "team-catalog", "kiln/catalog.json"))


def test_one_holder_and_the_lease_is_an_object_beside_the_catalog(catalog):
    mine, dead = catalog.leases.claim(lease("r1"), ttl=60)
    assert mine.run_id == "r1" and dead is None and 55 < mine.expires_at - mine.taken_at <= 60
    # The server's clock (its Date header), which is this machine's here.
    assert "date" in s3().list_buckets()["ResponseMetadata"]["HTTPHeaders"]
    assert abs(mine.taken_at - time.time()) < 120
    theirs, _ = catalog.leases.claim(lease("r2"), ttl=60)
    assert theirs.run_id == "r1"
    keys = [o["Key"] for o in s3().list_objects_v2(Bucket="team-catalog")["Contents"]]
    assert keys == [f"kiln/catalog.json.leases/aws/app/{'ab' * 32}.json"]
    assert [le.run_id for le in catalog.leases.live()] == ["r1"]
    catalog.leases.release(lease("r2"))  # not the holder
    catalog.leases.release(mine)
    assert catalog.leases.live() == [] and "Contents" not in s3().list_objects_v2(Bucket="team-catalog")


def test_many_machines_claiming_at_once_get_exactly_one_lease(catalog):
    winners: list[str] = []
    start = threading.Barrier(8)

    def claim(n: int) -> None:
        book = S3Store(s3(), "team-catalog", "kiln/catalog.json").leases
        start.wait()
        if book.claim(lease(f"r{n}"), ttl=60)[0].run_id == f"r{n}":
            winners.append(f"r{n}")

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1


def test_an_unrenewed_lease_expires_by_the_servers_clock_and_is_taken_over(catalog):
    catalog.leases.claim(lease("r1"), ttl=2)
    assert catalog.leases.claim(lease("r2"), ttl=2)[0].run_id == "r1"
    time.sleep(3.5)
    assert catalog.leases.live() == []
    mine, dead = catalog.leases.claim(lease("r2"), ttl=2)
    assert mine.run_id == "r2" and dead is not None and dead.run_id == "r1"
    with pytest.raises(LeaseLost, match="to ci-r2 on agent"):
        catalog.leases.renew(lease("r1"), ttl=2)


def test_renewal_keeps_the_lease_alive_past_its_first_expiry(catalog):
    mine, _ = catalog.leases.claim(lease("r1"), ttl=2)
    for _ in range(4):
        time.sleep(1)
        mine = catalog.leases.renew(mine, ttl=2)
    assert catalog.leases.claim(lease("r2"), ttl=2)[0].run_id == "r1"


class Interfering:
    """An S3 client whose next conditional put is preceded by ``write`` (another writer, or a retried request)."""

    def __init__(self, client: Any, write: dict[str, Any]) -> None:
        self.client = client
        self.write = write

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def put_object(self, **kwargs: Any) -> Any:
        if self.write and "IfMatch" in kwargs:
            body, self.write = self.write, {}
            self.client.put_object(Bucket=kwargs["Bucket"], Key=kwargs["Key"], Body=json.dumps(body).encode())
        return self.client.put_object(**kwargs)


def test_a_renewal_that_meets_an_etag_conflict_is_retried_and_nothing_is_lost(catalog):
    mine, _ = catalog.leases.claim(lease("r1"), ttl=60)
    # Our earlier renewal landed although its answer was lost: the object changed, and is still ours.
    again = {"image": "app", "key": KEY, "target": "aws", "actor": "ci-r1", "host": "agent", "run_id": "r1",
             "taken_at": mine.taken_at, "expires_at": mine.expires_at + 1, "ttl": 60}
    book = S3Store(Interfering(s3(), again), "team-catalog", "kiln/catalog.json").leases
    renewed = book.renew(mine, ttl=60)
    assert book.conflicts == 1 and renewed.run_id == "r1"
    [live] = catalog.leases.live()
    assert live == renewed
    # A takeover that lands between the renewal's read and its write is never overwritten.
    theirs = {**again, "actor": "ci-r2", "run_id": "r2"}
    book = S3Store(Interfering(s3(), theirs), "team-catalog", "kiln/catalog.json").leases
    with pytest.raises(LeaseLost, match="to ci-r2 on agent"):
        book.renew(renewed, ttl=60)
    assert [le.run_id for le in catalog.leases.live()] == ["r2"]
