"""Every export validates against the published JSON Schema; the schema can fail."""

import copy
import hashlib

import pytest

from pipeline.catalog import Artifact, Catalog, validate
from pipeline.errors import CatalogError


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def export(tmp_path):
    with Catalog.open(tmp_path / "catalog.db") as cat:
        b = cat.begin_bake(name="base", parent=None, fingerprint=digest("b"), git_commit="c" * 40, git_dirty=False,
                           run_id="r", log_dir="/l")
        cat.add_artifact("base", b, Artifact(target="local", id=digest("img"), path="/s/base.qcow2"))
        cat.set_status("base", b, "verified")
        a = cat.begin_bake(name="app", parent=("base", b), fingerprint=digest("a"), git_commit="c" * 40,
                           git_dirty=True, run_id="r", log_dir="/l")
        cat.add_artifact("app", a, Artifact(target="local", id=digest("img2"), path="/s/app.qcow2"))
        cat.set_status("app", a, "verified")
        cat.record_packages("app", a, [{"name": "nginx", "version": "1.22.1-9", "architecture": "amd64"}])
        cat.promote("app", a, "prod")
        a2 = cat.begin_bake(name="app", parent=("base", b), fingerprint=digest("a2"), git_commit="d" * 40,
                            git_dirty=False, run_id="r2", log_dir="/l")
        cat.set_status("app", a2, "failed")
        cat.revoke("app", a, reason="test", cascade=False)
        return cat.export()


def test_export_validates(export):
    validate(export)
    assert {i["status"] for i in export["images"]} == {"verified", "revoked", "failed"}


@pytest.mark.parametrize(("mutate", "where"), [
    (lambda d: d.update(schema_version=2), "schema_version"),
    (lambda d: d["images"][0].update(status="golden"), "images/0/status"),
    (lambda d: d["images"][0].update(version="latest"), "images/0/version"),
    (lambda d: d["images"][0].pop("fingerprint"), "images/0"),
    (lambda d: d["images"][0]["artifacts"][0].update(target="gcp"), "images/0/artifacts/0/target"),
])
def test_schema_rejects_broken_exports(export, mutate, where):
    doc = copy.deepcopy(export)
    mutate(doc)
    with pytest.raises(CatalogError, match=f"at {where}"):
        validate(doc)
