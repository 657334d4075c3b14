"""Fifty writers at once, on both catalog stores: no update is lost, counted."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import boto3
import pytest

from pipeline.catalog import Artifact, Catalog
from pipeline.stores import S3Catalog

pytestmark = pytest.mark.faults
WRITERS = 50


def write_once(cat, n: int) -> None:
    v = cat.begin_bake(name="app", parent=None, fingerprint="sha256:" + "a" * 64, git_commit="c", git_dirty=False,
                       run_id=f"w{n}", log_dir="/l")
    cat.add_artifact("app", v, Artifact(target="local", id=f"sha256:{n}", path=f"/s/{n}"))
    cat.set_status("app", v, "verified")
    cat.promote("app", v, "prod")


def sqlite_writer(path: str, n: int) -> None:
    with Catalog.open(Path(path)) as cat:
        write_once(cat, n)


def count(cat) -> tuple[int, int, int]:
    records = cat.versions("app")
    promotes = [e for e in cat.channel_history("app", "prod") if e.action == "promote"]
    return len(records), len({r.run_id for r in records}), len(promotes)


def test_fifty_sqlite_writers(tmp_path):
    path = tmp_path / "catalog.db"
    Catalog.open(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=sqlite_writer, args=(str(path), n)) for n in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0] * WRITERS
    with Catalog.open(path) as cat:
        assert count(cat) == (WRITERS, WRITERS, WRITERS)


@pytest.mark.aws
def test_fifty_s3_writers(aws):
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="kiln-catalog")
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            write_once(S3Catalog(boto3.client("s3", region_name="us-east-1"), "kiln-catalog", "c.json",
                                 attempts=200), n)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert errors == []
    assert count(S3Catalog(boto3.client("s3", region_name="us-east-1"), "kiln-catalog", "c.json")) == (
        WRITERS, WRITERS, WRITERS)
