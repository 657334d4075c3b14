"""Restoring a catalog from its export: everything comes back (a second export is the first), rollbacks go
where they would have gone, and nothing is imported by accident or from a file that is not an export."""

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.app import catalog as catalog_app
from pipeline.catalog import Artifact, Catalog, dumps
from pipeline.catalog.imports import read
from pipeline.errors import CatalogError, ConfigError

T = datetime(2026, 11, 27, 14, 0, 0, tzinfo=UTC)


def verified(cat: Catalog, name: str, minute: int, parent=None) -> str:
    version = cat.begin_bake(name=name, parent=parent, fingerprint=f"sha256:{minute:064d}", git_commit="abc",
                             git_dirty=minute % 2 == 1, run_id=f"run-{minute}", log_dir=f"/logs/{minute}",
                             clock=lambda: T + timedelta(minutes=minute))
    cat.add_artifact(name, version, Artifact(target="aws", id=f"ami-0{minute:016d}", region="eu-west-1"))
    cat.record_packages(name, version, [{"name": "nginx", "version": f"1.{minute}", "architecture": "amd64"}])
    cat.set_status(name, version, "verified", report=f"/logs/{minute}/report.json")
    return version


@pytest.fixture
def original(tmp_path) -> Catalog:
    """A catalog with lineage, promotions, a rollback, a revoke with its fallback, a restore and a failure."""
    cat = Catalog.open(tmp_path / "original.db")
    base = verified(cat, "base", 1)
    apps = [verified(cat, "app", m, parent=("base", base)) for m in (2, 3, 4, 5)]
    for v in apps[:3]:
        cat.promote("app", v, "prod")
    cat.rollback("app", "prod")
    cat.promote("app", apps[3], "staging")
    cat.revoke("app", apps[0], reason="CVE", cascade=False)
    cat.restore("app", apps[0])
    failed = cat.begin_bake(name="app", parent=("base", base), fingerprint="sha256:" + "9" * 64, git_commit="abc",
                            git_dirty=False, run_id="run-9", log_dir="/logs/9", clock=lambda: T + timedelta(hours=1))
    cat.set_status("app", failed, "failed", reason="1 of 3 spec(s) failed")
    yield cat
    cat.close()


def test_an_imported_export_exports_the_same_and_rolls_back_the_same(original, tmp_path):
    doc = original.export()
    with Catalog.open(tmp_path / "restored.db") as restored:
        assert restored.restore_export(read(dumps(doc), "before.json")) == len(doc["images"])
        assert restored.export() == doc
        for cat in (original, restored):
            cat.rollback("app", "prod")
        assert restored.channel("app", "prod") == original.channel("app", "prod") is not None
        assert restored.export()["channel_history"] == original.export()["channel_history"]


def test_a_catalog_that_holds_versions_is_replaced_only_when_asked(original, tmp_path):
    doc = original.export()
    with Catalog.open(tmp_path / "other.db") as other:
        verified(other, "db", 7)
        identity, before = other.identity(), other.export()
        with pytest.raises(CatalogError, match=r"already holds 1 version\(s\); nothing was imported") as err:
            other.restore_export(doc)
        assert "--replace" in err.value.hint and other.export() == before
        other.restore_export(doc, replace=True)
        assert other.export() == doc and other.identity() == identity  # AMIs tagged with its id stay its own


def test_an_import_on_a_target_that_mirrors_channels_marks_every_image_pending(original, tmp_path):
    with Catalog.open(tmp_path / "restored.db") as restored:
        restored.mirrored_by = "aws"
        restored.restore_export(original.export())
        assert set(restored.pending()) == {"base", "app"}


@pytest.mark.parametrize(("text", "expect"), [
    ("{not json", r"before.json:1:2: not JSON"),
    ("{}", r"before.json: export does not match catalog-v1.schema.json at \(root\)"),
    ('{"schema_version": 2, "images": [], "channels": {}, "channel_history": {}}',
     r"before.json: export does not match catalog-v1.schema.json at schema_version"),
])
def test_a_file_that_is_not_an_export_is_refused_in_one_line(text, expect):
    with pytest.raises(CatalogError, match=expect) as err:
        read(text, "before.json")
    assert "invoke catalog.export" in err.value.hint


def test_the_task_restores_a_local_catalog_and_names_it(original, tmp_path, monkeypatch):
    monkeypatch.setenv("KILN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KILN_CATALOG", raising=False)
    export = tmp_path / "before.json"
    export.write_text(dumps(original.export()))
    lines = catalog_app.import_export(export)
    assert lines == [f"imported 6 version(s) of 2 image(s) into {tmp_path / 'home' / 'catalog.db'}"]
    assert catalog_app.export() == original.export()
    with pytest.raises(CatalogError, match="already holds 6 version"):
        catalog_app.import_export(export)
    with pytest.raises(ConfigError, match="cannot read it"):
        catalog_app.import_export(tmp_path / "missing.json")
