"""The shared catalog in S3: same interface as the SQLite one, optimistic locking, no lost update."""

import json
import threading

import boto3
import pytest

from pipeline.catalog import Artifact, Catalog, validate
from pipeline.catalog.s3_store import S3Store
from pipeline.errors import CatalogError

pytestmark = pytest.mark.aws


def s3():
    return boto3.client("s3", region_name="us-east-1")


def bake(cat, name="app", parent=None):
    v = cat.begin_bake(name=name, parent=parent, fingerprint="sha256:" + "a" * 64, git_commit="c" * 40,
                       git_dirty=False, run_id="r", log_dir="/l")
    cat.add_artifact(name, v, Artifact(target="aws", id=f"ami-{abs(hash(v)) % 10**17:017x}", region="us-east-1"))
    cat.set_status(name, v, "verified")
    return v


def test_same_interface_and_the_document_is_the_export(aws):
    s3().create_bucket(Bucket="team-catalog")
    cat = Catalog(S3Store(s3(), "team-catalog", "kiln/catalog.json"))
    base = bake(cat, "base")
    app = bake(cat, "app", parent=("base", base))
    cat.promote("app", app, "prod")
    assert cat.channel("app", "prod") == app
    assert cat.resolve("app", channel="prod", target="aws", region="us-east-1").id.startswith("ami-")
    doc = json.loads(s3().get_object(Bucket="team-catalog", Key="kiln/catalog.json")["Body"].read())
    validate(doc)
    assert doc["channels"]["app"] == {"latest": app, "prod": app}
    with pytest.raises(CatalogError, match="it is building"):
        cat.promote("app", cat.begin_bake(name="app", parent=None, fingerprint="sha256:" + "b" * 64,
                                          git_commit="c", git_dirty=False, run_id="r", log_dir="/l"), "prod")


def test_parallel_writers_lose_no_update(aws):
    s3().create_bucket(Bucket="team-catalog")
    writers, rounds = 10, 4
    errors: list[BaseException] = []
    stores = [Catalog(S3Store(s3(), "team-catalog", "kiln/catalog.json")) for _ in range(writers)]

    def work(cat):
        try:
            for _ in range(rounds):
                cat.promote("app", bake(cat), "prod")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    reader = Catalog(S3Store(s3(), "team-catalog", "kiln/catalog.json"))
    assert len(reader.versions("app")) == writers * rounds
    assert len([e for e in reader.channel_history("app", "prod") if e.action == "promote"]) == writers * rounds
    assert sum(c.store.conflicts for c in stores) > 0  # the writers did collide, and retried


def test_missing_bucket_and_garbage_document(aws):
    with pytest.raises(CatalogError, match="bucket nope-bucket does not exist"):
        Catalog(S3Store(s3(), "nope-bucket", "k")).versions()
    s3().create_bucket(Bucket="team-catalog")
    s3().put_object(Bucket="team-catalog", Key="k", Body=b"{not json")
    with pytest.raises(CatalogError, match="not JSON"):
        Catalog(S3Store(s3(), "team-catalog", "k")).versions()
