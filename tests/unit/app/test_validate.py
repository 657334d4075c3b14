"""`invoke validate` passes on the repo and catches, with file:line, what breaks a bake."""

from pathlib import Path

from pipeline import config
from pipeline.app import validate


def test_broken_hcl_template_is_named_with_its_line(project_copy: Path):
    sources = project_copy / "packer/image/sources.pkr.hcl"
    lines = sources.read_text().splitlines()
    lines[9] = lines[9] + " {"  # an unbalanced brace on line 10
    sources.write_text("\n".join(lines) + "\n")
    findings = validate.check_templates(project_copy)
    assert findings and findings[0].file == "packer/image/sources.pkr.hcl"
    assert findings[0].line >= 10 and "invalid HCL" in findings[0].message


def test_packer_rejects_a_bad_value_and_says_where(project_copy: Path):
    sources = project_copy / "packer/image/sources.pkr.hcl"
    sources.write_text(sources.read_text().replace('  format           = "qcow2"', '  format           = 42'))
    findings = validate.check_templates(project_copy)
    assert findings, findings
    assert all(f.file.startswith("packer/image") for f in findings)


def test_yaml_error_in_a_role(project_copy: Path):
    tasks = project_copy / "playbooks/roles/chrony/tasks/main.yml"
    tasks.write_text("---\n- name: Install chrony\n  ansible.builtin.apt:\n    name: [chrony\n")
    findings = validate.check_playbooks(project_copy, config.load(project_copy))
    assert [(f.file, f.line) for f in findings] == [("playbooks/roles/chrony/tasks/main.yml", 5)], findings
    assert "invalid YAML" in findings[0].message


def test_lint_finding_has_file_and_line(project_copy: Path):
    tasks = project_copy / "playbooks/roles/chrony/tasks/main.yml"
    tasks.write_text(tasks.read_text() + "\n- name: Shell out\n  ansible.builtin.shell: echo hi\n")
    findings = validate.check_playbooks(project_copy, config.load(project_copy))
    assert any(f.file == "playbooks/roles/chrony/tasks/main.yml" and f.line > 1 and "ansible-lint" in f.message
               for f in findings), findings


def test_spec_that_fails_to_import(project_copy: Path):
    (project_copy / "specs/app/test_broken.py").write_text("import os\n\nimport no_such_module_kiln\n")
    findings = validate.check_specs(project_copy, config.load(project_copy))
    assert [(f.file, f.line) for f in findings] == [("specs/app/test_broken.py", 3)], findings
    assert "no_such_module_kiln" in findings[0].message


def test_bad_config_is_a_finding(project_copy: Path):
    (project_copy / "playbooks/worker.yml").write_text("- hosts: all\n  roles: []\n")
    (project_copy / "specs/worker").mkdir()
    with open(project_copy / "kiln.toml", "a") as fh:
        fh.write('\n[images.worker]\nparent = "ghost"\n')
    _, findings = validate.check_config(project_copy)
    assert findings[0].file == "kiln.toml" and findings[0].line > 1 and "unknown parent 'ghost'" in findings[0].message


def test_the_repository_validates(root):
    assert validate.run(root) == []
