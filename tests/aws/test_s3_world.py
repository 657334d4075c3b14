"""The S3 catalog against failures of the world: lost replies, S3 errors, objects deleted or replaced by hand.

Faults are injected in-process, in front of a real boto3 client talking HTTP to the
emulator: the request reaches S3 and is applied, and only what comes back is changed.
"""

import json

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from pipeline.catalog import Catalog
from pipeline.catalog.s3_store import S3Store
from pipeline.errors import CatalogError, CatalogMissing, CloudError
from tests.aws.test_s3_catalog import bake

pytestmark = [pytest.mark.aws, pytest.mark.faults]
BUCKET, KEY = "team-catalog", "kiln/catalog.json"


class Faulty:
    """A boto3 S3 client whose next ``put_object`` calls reach S3, but whose replies are replaced by ``faults``."""

    def __init__(self, faults=()):
        self.real = boto3.client("s3", region_name="us-east-1")
        self.faults = list(faults)
        self.puts = 0

    def __getattr__(self, name):
        return getattr(self.real, name)

    def put_object(self, **kwargs):
        reply = self.real.put_object(**kwargs)
        self.puts += 1
        if self.faults:
            raise self.faults.pop(0)
        return reply


def lost():
    """What botocore raises when the reply to an applied PUT never came."""
    return ReadTimeoutError(endpoint_url="http://s3")


def conflict():
    """What botocore's own retry of an applied PUT meets: the object changed (by that very PUT)."""
    return ClientError({"Error": {"Code": "PreconditionFailed"}, "ResponseMetadata": {"HTTPStatusCode": 412}},
                       "PutObject")


def body():
    return boto3.client("s3", region_name="us-east-1").get_object(Bucket=BUCKET, Key=KEY)["Body"].read()


@pytest.fixture
def bucket(aws):
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
    return BUCKET


@pytest.mark.parametrize("fault", [lost, conflict])
def test_a_lost_reply_applies_a_change_once(bucket, fault):
    client = Faulty()
    cat = Catalog(S3Store(client, BUCKET, KEY))
    base = bake(cat, "base")
    v1, v2 = bake(cat), bake(cat)
    client.faults = [fault()]
    cat.begin_bake(name="app", parent=("base", base), fingerprint="sha256:" + "c" * 64, git_commit="c",
                   git_dirty=False, run_id="r", log_dir="/l")
    assert [r.status for r in cat.versions("app")] == ["verified", "verified", "building"]  # one record, not two
    cat.promote("app", v1, "prod")
    client.faults = [fault()]
    cat.promote("app", v2, "prod")  # its reply lost: pushed once, so one rollback goes back to v1
    assert [e.action for e in cat.channel_history("app", "prod")] == ["promote", "promote"]
    cat.rollback("app", "prod")
    assert cat.channel("app", "prod") == v1
    assert client.puts == 13 and cat.store.conflicts == (2 if fault is conflict else 0)  # no put twice


def test_an_s3_failure_is_one_line_and_leaves_the_document(bucket):
    client = Faulty()
    cat = Catalog(S3Store(client, BUCKET, KEY))
    bake(cat, "base")
    before = body()
    client.put_object = lambda **kw: (_ for _ in ()).throw(ClientError(
        {"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "PutObject"))
    with pytest.raises(CloudError, match=rf"s3://{BUCKET}/{KEY}: cannot write the catalog \(SlowDown\)"):
        bake(cat, "app")
    assert body() == before
    unreachable = Faulty()
    unreachable.get_object = lambda **kw: (_ for _ in ()).throw(EndpointConnectionError(endpoint_url="http://s3"))
    with pytest.raises(CloudError, match="cannot read the catalog .Could not connect"):
        Catalog(S3Store(unreachable, BUCKET, KEY)).versions()


def export_of(cat):
    return json.dumps(cat.export()).encode()


@pytest.mark.parametrize(("replacement", "says"), [
    ("export", "is an export"), (b"{}", "not a Kiln catalog"), (b'{"state": []}', "state is damaged"),
    (b"[]", "JSON list, not an object"), (b'"x"', "JSON str"), (b"", "is empty"), (b"{not json", "not JSON"),
    (b'{"state": {"format": 99, "tables": {}}}', "format 99 is newer"),
    (b'{"state": {"format": 2, "tables": {"images": [[1]]}}}', "rows are damaged"),
])
def test_a_document_that_is_not_the_catalog_is_never_read_as_an_empty_one(bucket, replacement, says):
    cat = Catalog(S3Store(boto3.client("s3", region_name="us-east-1"), BUCKET, KEY))
    bake(cat, "base")
    replacement = export_of(cat) if replacement == "export" else replacement
    boto3.client("s3", region_name="us-east-1").put_object(Bucket=BUCKET, Key=KEY, Body=replacement)
    for act in (cat.versions, lambda: bake(cat, "app"), lambda: cat.promote("base", "x", "prod")):
        with pytest.raises(CatalogError, match=says) as err:
            act()
        assert f"s3://{BUCKET}/{KEY}" in str(err.value) and "\n" not in str(err.value)
    assert body() == replacement


def test_a_missing_document_is_an_error_unless_the_command_creates_the_catalog(bucket):
    client = boto3.client("s3", region_name="us-east-1")
    with pytest.raises(CatalogMissing, match=f"no catalog at s3://{BUCKET}/{KEY}"):
        Catalog(S3Store(client, BUCKET, KEY, create=False)).versions()
    created = Catalog(S3Store(client, BUCKET, KEY))
    bake(created, "base")
    assert [r.name for r in Catalog(S3Store(client, BUCKET, KEY, create=False)).versions()] == ["base"]
    assert created.identity() and created.identity() == Catalog(S3Store(client, BUCKET, KEY)).identity()


def test_a_holder_that_wakes_after_a_takeover_cannot_write_its_verdict_to_s3(bucket):
    import os

    from pipeline.progress import Reporter
    from tests.unit.bake.test_lease_bakes import stale_holder_writes

    reporter = Reporter(stream=open(os.devnull, "w"))  # noqa: SIM115
    cat_a, cat_b = (Catalog(S3Store(boto3.client("s3", region_name="us-east-1"), BUCKET, KEY)) for _ in "ab")
    version, refused = stale_holder_writes(cat_a, cat_b, reporter)
    assert [h["to"] for h in cat_b.status_history("app", version)] == ["building", "verified"]
    assert cat_b.latest("app").version == version


@pytest.mark.parametrize("fault", [lost, conflict])
def test_a_lost_reply_on_a_lease_claim_or_renewal_still_holds_the_lease_once(bucket, fault):
    from pipeline.catalog import Lease
    from pipeline.catalog.s3_leases import S3Leases

    client = Faulty([fault()])
    leases = S3Leases(client, BUCKET, KEY)
    want = Lease(image="app", key="sha256:" + "a" * 64, target="aws", actor="ci", host="h", run_id="run-1")
    got, dead = leases.claim(want, 60)
    assert got.ours(want) and dead is None
    client.faults = [fault()]
    renewed = leases.renew(got, 60)
    assert renewed.ours(want) and [lease.run_id for lease in leases.live()] == ["run-1"]
    other, _ = S3Leases(boto3.client("s3", region_name="us-east-1"), BUCKET, KEY).claim(
        Lease(image="app", key=want.key, target="aws", actor="b", host="h2", run_id="run-2"), 60)
    assert other.run_id == "run-1"  # still held: the second claimer sees the first
    unreachable = Faulty()
    unreachable.get_object = lambda **kw: (_ for _ in ()).throw(EndpointConnectionError(endpoint_url="http://s3"))
    with pytest.raises(CloudError, match="cannot read the lease .Could not connect"):
        S3Leases(unreachable, BUCKET, KEY).claim(want, 60)
