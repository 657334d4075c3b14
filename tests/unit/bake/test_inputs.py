from pathlib import Path

import pytest

from pipeline.bake import inputs
from pipeline.errors import ConfigError


def test_app_inputs_cover_its_roles_not_base_roles(root):
    found = inputs.collect(root, root / "playbooks" / "app.yml", {"parent": "sha256:p"})
    files = set(found.files)
    assert "playbooks/app.yml" in files
    assert "playbooks/roles/app_service/tasks/main.yml" in files
    assert "playbooks/roles/app_service/files/kiln_app.py" in files
    assert "playbooks/roles/app_service/templates/kiln-app.env.j2" in files
    assert "packer/image/sources.pkr.hcl" in files
    assert "packer/finalize.sh" in files
    assert not any(f.startswith("playbooks/roles/chrony/") for f in files)
    assert "playbooks/base.yml" not in files


def test_key_changes_with_a_role_file_and_values(project_copy: Path):
    pb = project_copy / "playbooks" / "app.yml"
    k1 = inputs.collect(project_copy, pb, {"parent": "a"}).key
    assert inputs.collect(project_copy, pb, {"parent": "a"}).key == k1
    assert inputs.collect(project_copy, pb, {"parent": "b"}).key != k1
    (project_copy / "playbooks/roles/app_service/defaults/main.yml").write_text("---\napp_service_port: 9\n")
    assert inputs.collect(project_copy, pb, {"parent": "a"}).key != k1


def test_base_role_change_does_not_touch_app_key(project_copy: Path):
    pb = project_copy / "playbooks" / "app.yml"
    k1 = inputs.collect(project_copy, pb, {}).key
    (project_copy / "playbooks/roles/chrony/tasks/main.yml").write_text("---\n[]\n")
    assert inputs.collect(project_copy, pb, {}).key == k1


def test_include_role_and_meta_dependencies_are_followed(project_copy: Path):
    roles = project_copy / "playbooks" / "roles"
    (roles / "extra" / "tasks").mkdir(parents=True)
    (roles / "extra" / "tasks" / "main.yml").write_text("- name: x\n  ansible.builtin.debug: {}\n")
    (roles / "dep" / "meta").mkdir(parents=True)
    (roles / "dep" / "meta" / "main.yml").write_text("dependencies:\n  - role: extra\n")
    pb = project_copy / "playbooks" / "w.yml"
    pb.write_text("- hosts: all\n  tasks:\n    - ansible.builtin.include_role:\n        name: dep\n")
    files = set(inputs.collect(project_copy, pb, {}).files)
    assert "playbooks/roles/dep/meta/main.yml" in files
    assert "playbooks/roles/extra/tasks/main.yml" in files


def test_missing_role_and_bad_yaml(project_copy: Path):
    pb = project_copy / "playbooks" / "w.yml"
    pb.write_text("- hosts: all\n  roles: [nope]\n")
    with pytest.raises(ConfigError, match="role 'nope' not found"):
        inputs.collect(project_copy, pb, {})
    pb.write_text("- hosts: all\n  roles: [\n")
    with pytest.raises(ConfigError, match=r"w.yml:\d+: invalid YAML"):
        inputs.collect(project_copy, pb, {})
