from pathlib import Path

import pytest

from pipeline import vm
from pipeline.errors import ConfigError
from pipeline.packer import templates


def test_repo_template_declares_what_the_pipeline_passes(root):
    declared = templates.variables(root / "packer" / "image")
    assert declared["image_name"].type == "string" and not declared["image_name"].has_default
    assert declared["use_backing_file"].type == "bool" and declared["use_backing_file"].has_default
    assert declared["seed_files"].type == "list(string)"


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


def test_a_packer_build_waits_for_first_boot_as_the_gate_does(root):
    build = templates.parse_file(root / "packer" / "image" / "build.pkr.hcl")["build"][0]
    first = build["provisioner"][0]["shell"]
    assert first["inline"] == [f"until {vm.CLOUD_INIT_DONE}; do sleep 0.2; done"]
    assert "amazon-ebs.emulator" in first["except"]
