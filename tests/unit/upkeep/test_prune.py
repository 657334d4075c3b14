"""Retention: the rule as examples, as a property (hypothesis), and applied to a real catalog."""


import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.catalog import Artifact, ImageRecord
from pipeline.errors import ConfigError
from pipeline.upkeep import prune


def rec(name, n, status="verified", parent=None):
    version = f"2026.1127.{n:06d}"
    return ImageRecord(name=name, version=version, status=status, parent=parent, fingerprint="sha256:x",
                       git_commit="c", git_dirty=False, created_at="2026-11-27T00:00:00Z", run_id="r", log_dir="/l",
                       artifacts=(Artifact(target="local", id=f"id-{name}-{n}", path=f"/s/{name}-{n}.qcow2"),))


def by_ref(decisions):
    return {d.ref: d for d in decisions}


def test_keeps_newest_channels_parents_and_in_use():
    base = [rec("base", i) for i in range(1, 5)]
    app = [rec("app", 10 + i, parent=("base", base[0].version)) for i in range(3)]
    app.append(rec("app", 20, status="failed", parent=("base", base[3].version)))
    channels = {"app": {"latest": app[2].version, "prod": app[0].version}, "base": {"latest": base[3].version}}
    d = by_ref(prune.decide(base + app, channels, keep=1, in_use={"/s/base-2.qcow2"}))
    assert "on channel prod" in d[app[0].ref].reasons
    assert d[app[1].ref].delete
    assert "among the newest 1 verified" in d[app[2].ref].reasons
    assert d[app[3].ref].delete  # failed, on no channel
    assert any(r.startswith("parent of app@") for r in d[base[0].ref].reasons)
    assert "in use (by a running VM)" in d[base[1].ref].reasons
    assert d[base[2].ref].delete
    assert not d[base[3].ref].delete


def test_building_versions_are_never_pruned():
    d = prune.decide([rec("app", 1, status="building")], {}, keep=1, in_use=())
    assert not d[0].delete and d[0].reasons == ("status building",)


@pytest.mark.parametrize("bad", ["0", "-1", "x", "1.5", ""])
def test_bad_keep(bad):
    with pytest.raises(ConfigError, match="invalid --keep"):
        prune.parse_keep(bad)


@st.composite
def catalogs(draw):
    records = []
    for name in ("base", "app", "worker"):
        parents = [r for r in records if r.name == "base"] if name != "base" else []
        for _ in range(draw(st.integers(0, 6))):
            parent = draw(st.sampled_from(parents)) if parents else None
            status = draw(st.sampled_from(["verified", "verified", "failed", "revoked", "interrupted"]))
            records.append(rec(name, len(records) + 1, status=status,
                               parent=(parent.name, parent.version) if parent else None))
    channels = {}
    for name in ("base", "app", "worker"):
        good = [r for r in records if r.name == name and r.status == "verified"]
        if good:
            channels[name] = {"latest": good[-1].version}
            if draw(st.booleans()):
                channels[name]["prod"] = draw(st.sampled_from(good)).version
    in_use = {r.artifacts[0].path for r in records if draw(st.integers(0, 9)) == 0}
    return records, channels, in_use, draw(st.integers(1, 4))


@settings(max_examples=300, deadline=None)
@given(catalogs())
def test_prune_never_removes_a_protected_version(case):
    records, channels, in_use, keep = case
    decisions = by_ref(prune.decide(records, channels, keep, in_use))
    kept = {ref for ref, d in decisions.items() if not d.delete}
    for r in records:
        if r.artifacts[0].path in in_use:
            assert r.ref in kept
    for name, chans in channels.items():
        for version in chans.values():
            assert f"{name}@{version}" in kept  # every channel stays resolvable
    for name in ("base", "app", "worker"):
        verified = [r for r in records if r.name == name and r.status == "verified"]
        for r in verified[-keep:]:
            assert r.ref in kept
    for r in records:
        if r.ref in kept and r.parent:
            assert f"{r.parent[0]}@{r.parent[1]}" in kept


def test_the_parent_of_a_bake_in_progress_is_kept_on_its_target(tmp_path):
    """app is building on base@v1 (nothing stored yet) while base@v2 is newer: base@v1 stays."""
    from pipeline.catalog import Catalog

    with Catalog.open(tmp_path / "catalog.db") as cat:
        versions = []
        for n in (1, 2):
            v = cat.begin_bake(name="base", parent=None, fingerprint=f"sha256:{n}", git_commit="c", git_dirty=False,
                               run_id="r", log_dir="/l", version=f"2026.1127.00000{n}")
            cat.add_artifact("base", v, Artifact(target="local", id=f"id-{n}", path=f"/s/base-{n}.qcow2"))
            cat.set_status("base", v, "verified")
            versions.append(v)
        building = cat.begin_bake(name="app", parent=("base", versions[0]), fingerprint="sha256:a", git_commit="c",
                                  git_dirty=False, run_id="r", log_dir="/l")
        d = by_ref(prune.plan(cat, keep=1, in_use=(), target="local"))
    assert not d[f"base@{versions[0]}"].delete
    assert d[f"base@{versions[0]}"].reasons == (f"parent of app@{building}",)
    assert f"app@{building}" not in d  # nothing of its own to delete yet
