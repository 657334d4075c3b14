"""The aws target's plans: what the build and the verification are given, chosen without an account."""


import re

import pytest

from pipeline import config
from pipeline.bake.inputs import Inputs
from pipeline.bake.layer import Git, Layer, Source
from pipeline.bake.run import Run
from pipeline.errors import KilnError
from pipeline.packer import templates
from pipeline.targets.aws import instance, packer_ebs
from pipeline.targets.aws.settings import AwsSettings


class Place:
    """What the aws builder reads of its target."""

    settings = AwsSettings(ssh_interface="private_ip", copy_regions=("eu-west-1",))
    api_only = False
    ssh_cidr = "10.20.0.0/16"

    def layer_tags(self, run, layer):
        return {"kiln:name": layer.spec.name}


def test_the_build_is_reachable_only_from_this_machine_by_the_chosen_interface(root, tmp_path):
    project = config.load(root)
    paths = config.Paths(project=root, home=tmp_path, cache=tmp_path)
    run = Run(paths=paths, project=project, catalog=None, reporter=None, target=None, builders={},  # type: ignore[arg-type]
              git=Git("abc", False), run_id="20261128T100000Z-abcdef", tool_values={})
    layer = Layer(spec=project.get("base"), version="2026.1128.100000", source=Source(None, "ami-1", "debian@ami-1"),
                  inputs=Inputs({}, {}), log_dir=tmp_path, scratch=tmp_path / "s", git=Git("abc", False))
    planned = packer_ebs.packer_variables(run, layer, Place())  # type: ignore[arg-type]
    templates.check_plan(root / "packer" / "image", planned)
    assert planned["aws_ssh_cidrs"] == ["10.20.0.0/16"]  # never Packer's default, 0.0.0.0/0
    assert planned["aws_ssh_interface"] == "private_ip"
    assert planned["aws_ami_regions"] == ["eu-west-1"]


def test_the_instance_address_follows_ssh_interface():
    described = {"InstanceId": "i-1", "PrivateIpAddress": "10.0.1.4", "PublicIpAddress": "54.1.2.3"}
    assert instance.address(described, "public_ip") == "54.1.2.3"
    assert instance.address(described, "private_ip") == "10.0.1.4"
    with pytest.raises(KilnError, match="i-1 has no public ip address") as err:
        instance.address({"InstanceId": "i-1", "PrivateIpAddress": "10.0.1.4"}, "public_ip")
    assert "ssh_interface = private_ip" in (err.value.hint or "")


class Subnets:
    """A loud stand-in for EC2's subnet and VPC queries."""

    def __init__(self):
        self.calls = []

    def describe_vpcs(self, Filters):  # noqa: N803 - boto3's names
        self.calls.append(("vpcs", Filters))
        return {"Vpcs": [{"VpcId": "vpc-1"}]}

    def describe_subnets(self, Filters):  # noqa: N803
        self.calls.append(("subnets", Filters))
        return {"Subnets": [{"SubnetId": "subnet-a", "VpcId": "vpc-1", "AvailableIpAddressCount": 10},
                            {"SubnetId": "subnet-b", "VpcId": "vpc-1", "AvailableIpAddressCount": 200}]}


def test_verification_launches_where_the_filters_say_in_the_freest_subnet():
    settings = AwsSettings(subnet_filter={"tag:tier": "build"}, vpc_filter={"tag:Name": "ci"})
    ec2 = Subnets()
    assert instance.placement(ec2, settings) == ("subnet-b", "vpc-1")
    assert ec2.calls == [("vpcs", [{"Name": "tag:Name", "Values": ["ci"]}]),
                         ("subnets", [{"Name": "tag:tier", "Values": ["build"]},
                                      {"Name": "vpc-id", "Values": ["vpc-1"]}])]
    assert instance.placement(Subnets(), AwsSettings()) == (None, None)  # no filters: the default VPC, as Packer


def test_no_matching_subnet_is_one_clear_error():
    class Empty(Subnets):
        def describe_subnets(self, Filters):  # noqa: N803
            return {"Subnets": []}

    with pytest.raises(KilnError, match="no subnet in us-east-1 matches"):
        instance.placement(Empty(), AwsSettings(subnet_filter={"tag:tier": "none"}))




def test_the_amazon_chroot_build_plans_what_the_templates_declare(root, tmp_path):
    from pipeline.app import validate
    from pipeline.targets.aws import packer_chroot

    project = config.load(root)
    paths = config.Paths(project=root, home=tmp_path, cache=tmp_path)
    run = Run(paths=paths, project=project, catalog=None, reporter=None, target=None, builders={},  # type: ignore[arg-type]
              git=Git("abc", False), run_id="20261128T100000Z-abcdef", tool_values={})
    layer = Layer(spec=project.get("base"), version="2026.1128.100000", source=Source(None, "ami-1", "debian@ami-1"),
                  inputs=Inputs({}, {}), log_dir=tmp_path, scratch=tmp_path, git=Git("abc", False))
    builder = packer_chroot.PackerChroot(Place())  # type: ignore[arg-type]
    planned = builder.variables(run, layer)  # type: ignore[arg-type]
    assert builder.template_sources == ("amazon-chroot.image",) and builder.name == "chroot"
    templates.check_plan(root / "packer" / "image", planned)
    assert (tmp_path / "chroot-inventory").read_text().startswith("/mnt/kiln-chroot/20261128T100000Z-abcdef ")
    assert ("aws", "amazon-chroot.image") in validate.template_sources()  # invoke validate runs packer validate on it


@pytest.mark.parametrize(("text", "says"), [("aws = 5\n", "kiln.toml:1: aws must be a table ([aws])"),
                                            ("[aws\n", "kiln.toml:1: invalid TOML")])
def test_aws_settings_that_are_not_a_table_or_not_toml_are_one_line(tmp_path, text, says):
    from pipeline.targets.aws.settings import load

    (tmp_path / "kiln.toml").write_text(text)
    with pytest.raises(KilnError, match=re.escape(says)):
        load(tmp_path, {})
