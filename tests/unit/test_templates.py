from pathlib import Path

import pytest

from pipeline import templates
from pipeline.errors import ConfigError


def test_repo_template_declares_what_the_pipeline_passes(root):
    declared = templates.variables(root / "packer" / "image")
    assert declared["image_name"].type == "string" and not declared["image_name"].has_default
    assert declared["use_backing_file"].type == "bool" and declared["use_backing_file"].has_default
    assert declared["seed_files"].type == "list(string)"


def test_bake_plan_matches_template(root, tmp_path):
    from pipeline import bake, config, seed
    from pipeline.inputs import Inputs

    project = config.load(root)
    paths = config.Paths(project=root, home=tmp_path, cache=tmp_path)
    run = bake.Run(paths=paths, project=project, catalog=None, reporter=None,  # type: ignore[arg-type]
                   tools=bake.Tools(packer=(1, 6, 6), ansible_core="2.19"), git=bake.Git("abc", False), run_id="r")
    layer = bake.Layer(spec=project.get("app"), version="2026.1127.141438", parent=None,
                       source_image=Path("/s/base.qcow2"), parent_label="base@1", inputs=Inputs({}, {}),
                       log_dir=tmp_path, scratch=tmp_path / "s", git=bake.Git("abc", False))
    access = seed.Access(user="packer", key=tmp_path / "k", seed_files=(tmp_path / "user-data",))
    planned = bake.packer_variables(run, layer, access)
    templates.check_plan(root / "packer" / "image", planned)
    assert planned["image_name"] == "app"
    assert '"kiln_image_parent": "base@1"' in planned["ansible_extra_vars"]


def test_check_plan_names_unknown_and_missing(root):
    with pytest.raises(ConfigError, match="undeclared variable.*bogus"):
        templates.check_plan(root / "packer" / "image", {"bogus": 1})
    with pytest.raises(ConfigError, match="image_name.*no default and no value"):
        templates.check_plan(root / "packer" / "image", {})


def test_malformed_hcl_gives_file_and_line(tmp_path: Path):
    bad = tmp_path / "variables.pkr.hcl"
    bad.write_text('variable "a" {\n  type = string\n\n  default = "x\n}\n')
    with pytest.raises(ConfigError) as err:
        templates.variables(tmp_path)
    assert str(bad) in err.value.message and "invalid HCL" in err.value.message
