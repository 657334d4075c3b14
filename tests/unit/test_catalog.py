import json
import sqlite3
import threading
from datetime import UTC, datetime

import pytest

from pipeline.catalog import Artifact, Catalog, dumps
from pipeline.errors import CatalogError

T = datetime(2026, 11, 27, 14, 14, 38, tzinfo=UTC)


def record(cat, name, parent=None, status="verified", clock=lambda: T):
    version = cat.begin_bake(name=name, parent=parent, fingerprint="sha256:" + "0" * 64, git_commit="abc",
                             git_dirty=False, run_id="run-1", log_dir="/logs", clock=clock)
    cat.add_artifact(name, version, Artifact(target="local", id=f"sha256:{name}{version}", path=f"/s/{name}"))
    cat.set_status(name, version, status, report="/logs/report.json")
    return version


def test_export_shape(tmp_path):
    with Catalog.open(tmp_path / "c.db") as cat:
        base = record(cat, "base")
        app = record(cat, "app", parent=("base", base))
        doc = cat.export()
    assert doc["schema_version"] == 1
    by_name = {i["name"]: i for i in doc["images"]}
    assert by_name["base"]["parent"] is None
    assert by_name["app"]["parent"] == {"name": "base", "version": base}
    img = by_name["app"]
    assert img["status"] == "verified"
    assert img["fingerprint"].startswith("sha256:")
    assert img["git"] == {"commit": "abc", "dirty": False}
    assert img["created_at"].endswith("Z")
    assert img["artifacts"] == [{"target": "local", "region": None, "id": f"sha256:app{app}", "path": "/s/app"}]
    assert doc["channels"] == {"base": {"latest": base}, "app": {"latest": app}}
    json.loads(dumps(doc))


def test_latest_is_newest_verified(tmp_path):
    with Catalog.open(tmp_path / "c.db") as cat:
        v1 = record(cat, "app")
        record(cat, "app", status="failed")
        assert cat.latest("app").version == v1
        v3 = record(cat, "app")
        assert cat.latest("app").version == v3
        assert [r.status for r in cat.versions("app")] == ["verified", "failed", "verified"]
        assert cat.export()["channels"]["app"]["latest"] == v3


def test_building_is_not_latest(tmp_path):
    with Catalog.open(tmp_path / "c.db") as cat:
        cat.begin_bake(name="app", parent=None, fingerprint="sha256:x", git_commit="a", git_dirty=True,
                       run_id="r", log_dir="/l")
        assert cat.latest("app") is None
        assert cat.export()["channels"] == {}


def test_unknown_version_and_status(tmp_path):
    with Catalog.open(tmp_path / "c.db") as cat:
        with pytest.raises(CatalogError, match="no such image version app@1"):
            cat.set_status("app", "1", "verified")
        v = record(cat, "app")
        with pytest.raises(CatalogError, match="unknown status"):
            cat.set_status("app", v, "golden")


def test_open_missing_without_create(tmp_path):
    with pytest.raises(CatalogError, match="no catalog"):
        Catalog.open(tmp_path / "none.db", create=False)


def test_corrupt_file_is_reported_and_untouched(tmp_path):
    bad = tmp_path / "c.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    before = bad.read_bytes()
    with pytest.raises(CatalogError, match="unreadable catalog"):
        Catalog.open(bad)
    assert bad.read_bytes() == before


def test_parallel_writers_lose_nothing(tmp_path):
    path = tmp_path / "c.db"
    Catalog.open(path).close()

    def writer(i):
        with Catalog.open(path) as cat:
            for _ in range(5):
                record(cat, "app")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with Catalog.open(path) as cat:
        vs = [r.version for r in cat.versions("app")]
    assert len(vs) == 40 and len(set(vs)) == 40


def test_wal_file_is_sqlite(tmp_path):
    with Catalog.open(tmp_path / "c.db") as cat:
        record(cat, "base")
    conn = sqlite3.connect(tmp_path / "c.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
