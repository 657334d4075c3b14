"""Channels, revocation, restore, history and resolve against a real SQLite file."""

from datetime import UTC, datetime

import pytest

from pipeline.catalog import Artifact, Catalog
from pipeline.errors import CatalogError, ConfigError

T = datetime(2026, 11, 27, 14, 0, 0, tzinfo=UTC)


@pytest.fixture
def cat(tmp_path, monkeypatch):
    monkeypatch.setenv("KILN_ACTOR", "tester")
    with Catalog.open(tmp_path / "catalog.db") as c:
        yield c


def bake(cat, name, parent=None, status="verified", key="sha256:k"):
    v = cat.begin_bake(name=name, parent=parent, fingerprint=key, git_commit="c", git_dirty=False, run_id="r",
                       log_dir="/l")
    cat.add_artifact(name, v, Artifact(target="local", id=f"sha256:{name}-{v}", path=f"/store/{name}-{v}.qcow2"))
    cat.set_status(name, v, status)
    return v


def test_latest_moves_on_every_verified_bake_named_channels_only_on_promote(cat):
    a1 = bake(cat, "app")
    assert cat.channel("app") == a1 and cat.channel("app", "prod") is None
    cat.promote("app", a1, "prod")
    a2 = bake(cat, "app")
    assert cat.channel("app") == a2
    assert cat.channel("app", "prod") == a1


def test_promote_rollback_history(cat):
    v1, v2, v3 = bake(cat, "app"), bake(cat, "app"), bake(cat, "app")
    for v in (v1, v2, v3):
        cat.promote("app", v, "prod")
    move = cat.rollback("app", "prod")
    assert (move.from_version, move.to_version) == (v3, v2)
    assert cat.rollback("app", "prod").to_version == v1
    with pytest.raises(CatalogError, match="no earlier good version"):
        cat.rollback("app", "prod")
    history = cat.channel_history("app", "prod")
    assert [(e.action, e.from_version, e.to_version) for e in history] == [
        ("promote", None, v1), ("promote", v1, v2), ("promote", v2, v3), ("rollback", v3, v2), ("rollback", v2, v1)]
    assert all(e.who == "tester" and e.at.endswith("Z") for e in history)


def test_only_verified_non_revoked_can_be_promoted(cat):
    failed = bake(cat, "app", status="failed")
    with pytest.raises(CatalogError, match="it is failed"):
        cat.promote("app", failed, "prod")
    good = bake(cat, "app")
    cat.revoke("app", good, reason="cve", cascade=False)
    with pytest.raises(CatalogError, match="it is revoked"):
        cat.promote("app", good, "prod")
    with pytest.raises(CatalogError, match="latest channel moves by itself"):
        cat.promote("app", good, "latest")
    with pytest.raises(ConfigError, match="invalid channel"):
        cat.promote("app", good, "Prod!")
    with pytest.raises(CatalogError, match="no such image version"):
        cat.promote("app", "2020.0101.000000", "prod")


def test_revoke_falls_back_and_restore_brings_back(cat):
    v1, v2 = bake(cat, "app"), bake(cat, "app")
    cat.promote("app", v1, "prod")
    cat.promote("app", v2, "prod")
    revoked, moves = cat.revoke("app", v2, reason="bad build", cascade=False)
    assert revoked == [f"app@{v2}"]
    assert {(m.channel, m.from_version, m.to_version) for m in moves} == {("latest", v2, v1), ("prod", v2, v1)}
    assert cat.channel("app", "prod") == v1 and cat.channel("app") == v1
    assert cat.get("app", v2).status == "revoked"
    assert cat.status_history("app", v2)[-1]["reason"] == "bad build"
    restored, moves = cat.restore("app", v2)
    assert restored == [f"app@{v2}"] and cat.get("app", v2).status == "verified"
    assert cat.channel("app", "prod") == v2
    actions = [e.action for e in cat.channel_history("app", "prod")]
    assert actions == ["promote", "promote", "fallback", "restore"]


def test_revoke_with_cascade_takes_descendants_and_blocks_baking_on_them(cat):
    b = bake(cat, "base")
    a = bake(cat, "app", parent=("base", b))
    w = bake(cat, "worker", parent=("app", a))
    other = bake(cat, "base")
    revoked, _ = cat.revoke("base", b, reason="openssl", cascade=True)
    assert set(revoked) == {f"base@{b}", f"app@{a}", f"worker@{w}"}
    assert cat.channel("app") is None and cat.channel("base") == other
    with pytest.raises(CatalogError, match=f"cannot bake app on base@{b}: it is revoked"):
        cat.begin_bake(name="app", parent=("base", b), fingerprint="k", git_commit="c", git_dirty=False,
                       run_id="r", log_dir="/l")
    with pytest.raises(CatalogError, match="its parent is revoked"):
        cat.restore("app", a)
    restored, _ = cat.restore("base", b, cascade=True)
    assert set(restored) == {f"base@{b}", f"app@{a}", f"worker@{w}"}


def test_child_cannot_be_verified_once_parent_is_revoked(cat):
    b = bake(cat, "base")
    a = cat.begin_bake(name="app", parent=("base", b), fingerprint="k", git_commit="c", git_dirty=False,
                       run_id="r", log_dir="/l")
    cat.revoke("base", b, reason="x", cascade=False)
    with pytest.raises(CatalogError, match="its parent base@.* is revoked"):
        cat.set_status("app", a, "verified")


def test_resolve(cat):
    v = bake(cat, "app")
    cat.promote("app", v, "prod")
    assert cat.resolve("app", channel="prod").id == f"sha256:app-{v}"
    assert cat.resolve("app").path == f"/store/app-{v}.qcow2"
    with pytest.raises(CatalogError, match="no version on channel 'staging'"):
        cat.resolve("app", channel="staging")
    with pytest.raises(CatalogError, match="no image called 'nope'"):
        cat.resolve("nope")
    with pytest.raises(CatalogError, match="no artifact on aws in eu-west-1"):
        cat.resolve("app", target="aws", region="eu-west-1")


def test_with_key_finds_identical_verified_bake(cat):
    v1 = bake(cat, "app", key="sha256:one")
    bake(cat, "app", key="sha256:two", status="failed")
    assert cat.with_key("app", "sha256:one").version == v1
    assert cat.with_key("app", "sha256:two") is None


def test_packages_and_verifications(cat):
    v = bake(cat, "app")
    cat.record_packages("app", v, [{"name": "zlib1g", "version": "1:1.2.13", "architecture": "amd64"},
                                   {"name": "bash", "version": "5.2", "architecture": "amd64"}])
    assert [p["name"] for p in cat.packages("app", v)] == ["bash", "zlib1g"]
    assert cat.last_verification("app", v) is None
    cat.record_verification("app", v, spec_digest="sha256:s1", ok=True, report="/r1")
    cat.record_verification("app", v, spec_digest="sha256:s2", ok=False, report="/r2")
    assert cat.last_verification("app", v)["spec_digest"] == "sha256:s2"


def test_export_has_history_channels_lineage_packages(cat):
    b = bake(cat, "base")
    a = bake(cat, "app", parent=("base", b))
    cat.promote("app", a, "prod")
    cat.record_packages("app", a, [{"name": "nginx", "version": "1.22", "architecture": "amd64"}])
    doc = cat.export()
    base = next(i for i in doc["images"] if i["name"] == "base")
    app = next(i for i in doc["images"] if i["name"] == "app")
    assert base["children"] == [f"app@{a}"]
    assert [h["to"] for h in app["status_history"]] == ["building", "verified"]
    assert app["packages"] == [{"name": "nginx", "version": "1.22", "architecture": "amd64"}]
    assert doc["channels"]["app"] == {"latest": a, "prod": a}
    assert doc["channel_history"]["app"]["prod"][0]["to"] == a
