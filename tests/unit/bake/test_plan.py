"""The bake key decides: up to date, re-verify, or bake — and names why."""

from pathlib import Path

import pytest

from pipeline import config
from pipeline.bake import inputs
from pipeline.bake import plan as plan_mod
from pipeline.catalog import Artifact, Catalog
from pipeline.cli import render
from pipeline.targets.local import LocalTarget

TOOLS = {"packer": "1.6.6", "ansible-core": "2.19.14", "target": "local"}


@pytest.fixture
def env(project_copy: Path, tmp_path: Path):
    cat = Catalog.open(tmp_path / "catalog.db")
    yield project_copy, cat
    cat.close()


def planner(project_root: Path, cat: Catalog, tools=TOOLS) -> plan_mod.Planner:
    paths = config.Paths(project=project_root, home=project_root, cache=project_root)
    return plan_mod.Planner(project=config.load(project_root), catalog=cat, target=LocalTarget(paths),
                            tool_values=tools)


def record_all(root: Path, cat: Catalog) -> None:
    """Record verified bakes of every outdated image, the way a bake would."""
    p = planner(root, cat)
    for decision in p.plan(["app"]):
        spec = p.project.get(decision.image)
        parent = cat.latest(spec.parent) if spec.parent else None
        found = p.inputs_for(spec, parent)
        v = cat.begin_bake(name=spec.name, parent=(parent.name, parent.version) if parent else None,
                           fingerprint=found.key, git_commit="c", git_dirty=False, run_id="r", log_dir="/l",
                           inputs=found.to_json())
        cat.add_artifact(spec.name, v, Artifact(target="local", id=f"sha256:{spec.name}{v}", path="/p"))
        cat.set_status(spec.name, v, "verified")
        digest = inputs.spec_digest(p.project.root, p.project.lineage(spec.name))
        cat.record_verification(spec.name, v, spec_digest=digest, ok=True, report=None)


def actions(root, cat, **kw):
    return {d.image: d for d in planner(root, cat, kw.pop("tools", TOOLS)).plan(["app"], **kw)}


def test_never_built_then_up_to_date(env):
    root, cat = env
    first = actions(root, cat)
    assert first["base"].action == "bake" and first["base"].reasons == ("never built",)
    assert first["app"].action == "bake" and "base will be rebaked first" in first["app"].reasons[0]
    record_all(root, cat)
    now = actions(root, cat)
    assert [d.action for d in now.values()] == ["up to date", "up to date"]
    assert now["app"].describe().startswith(f"up to date: app {cat.latest('app').version} (key ")


def test_app_role_change_names_the_file_and_spares_base(env):
    root, cat = env
    record_all(root, cat)
    role = root / "playbooks/roles/app_service/templates/nginx-site.j2"
    role.write_text(role.read_text() + "# tweak\n")
    now = actions(root, cat)
    assert now["base"].action == "up to date"
    assert now["app"].action == "bake"
    assert now["app"].reasons == ("inputs changed: playbooks/roles/app_service/templates/nginx-site.j2",)


def test_base_role_change_rebakes_base_then_app(env):
    root, cat = env
    record_all(root, cat)
    (root / "playbooks/roles/chrony/tasks/main.yml").write_text("---\n- name: X\n  ansible.builtin.debug: {}\n")
    now = actions(root, cat)
    assert now["base"].action == "bake" and "playbooks/roles/chrony/tasks/main.yml" in now["base"].reasons[0]
    assert now["app"].action == "bake" and now["app"].reasons == ("parent changed (base will be rebaked first)",)
    assert list(now) == ["base", "app"]


def test_spec_change_reverifies_without_rebaking(env):
    root, cat = env
    record_all(root, cat)
    spec = root / "specs/app/test_app.py"
    spec.write_text(spec.read_text() + "\n# stricter\n")
    now = actions(root, cat)
    assert now["base"].action == "up to date"
    assert now["app"].action == "re-verify" and now["app"].current.version == cat.latest("app").version


def test_base_spec_change_reverifies_both(env):
    root, cat = env
    record_all(root, cat)
    spec = root / "specs/base/test_base.py"
    spec.write_text(spec.read_text() + "\n# stricter\n")
    assert [d.action for d in actions(root, cat).values()] == ["re-verify", "re-verify"]


def test_tool_version_and_force(env):
    root, cat = env
    record_all(root, cat)
    now = actions(root, cat, tools={**TOOLS, "packer": "1.11.2"})
    assert now["base"].reasons == ("packer 1.6.6 → 1.11.2",)
    forced = actions(root, cat, force=["app"])
    assert forced["base"].action == "up to date"
    assert forced["app"].action == "bake" and forced["app"].reasons[0].startswith("forced with --force (up to date")


def test_revoked_base_means_rebake(env):
    root, cat = env
    record_all(root, cat)
    base = cat.latest("base")
    cat.revoke("base", base.version, reason="cve", cascade=True)
    now = actions(root, cat)
    assert now["base"].action == "bake" and "is revoked" in now["base"].reasons[0]
    assert now["app"].action == "bake"


def test_foundation_recipe_is_a_base_input(env):
    root, cat = env
    record_all(root, cat)
    recipe = root / "packer/foundation/recipe.toml"
    recipe.write_text(recipe.read_text() + "# new snapshot\n")
    now = actions(root, cat)
    assert now["base"].reasons == ("foundation recipe changed",)


def test_graph_is_drawn(root):
    project = config.load(root)
    assert render.graph(project) == "foundation\n└── base\n    └── app"


def test_security_updates_are_a_reason_to_rebake(env):
    from pipeline.upkeep.updates import Update

    root, cat = env
    record_all(root, cat)
    p = planner(root, cat)
    p.updates = lambda manifest: [Update("openssl", "3.0.15-1~deb12u1", "3.0.17-1~deb12u2", True)]
    now = {d.image: d for d in p.plan(["app"])}
    assert now["base"].action == "bake"
    assert now["base"].reasons == ("security updates pending: openssl 3.0.15-1~deb12u1 → 3.0.17-1~deb12u2",)
    assert now["app"].reasons == ("parent changed (base will be rebaked first)",)
    p.updates = lambda manifest: [Update("chrony", "4.3-2", "4.3-2+deb12u1", False)]
    quiet = {d.image: d for d in p.plan(["app"])}
    assert quiet["base"].action == "up to date"
    assert quiet["base"].describe().endswith("; 1 non-security update(s) pending, e.g. chrony 4.3-2 → 4.3-2+deb12u1")
