from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.targets.aws import settings


def project(tmp_path: Path, aws: str = "") -> Path:
    (tmp_path / "kiln.toml").write_text("[images.base]\n\n[aws]\n" + aws)
    return tmp_path


def test_defaults(tmp_path):
    s = settings.load(project(tmp_path), {})
    assert s.region == "us-east-1" and s.regions == ("us-east-1",)
    assert s.source_ami_owners == (settings.DEBIAN_OWNER,) and s.ssh_username == "admin"


def test_precedence_defaults_file_env_cli(tmp_path):
    root = project(tmp_path, 'region = "eu-west-1"\ncopy_regions = ["eu-central-1"]\ninstance_type = "t3.small"\n'
                             'extra_tags = { Team = "web" }\n')
    assert settings.load(root, {}).region == "eu-west-1"
    assert settings.load(root, {"AWS_REGION": "us-west-2"}).region == "eu-west-1"  # ambient region is a default
    env = {"KILN_AWS_REGION": "eu-north-1", "KILN_AWS_COPY_REGIONS": "us-east-1, us-west-2",
           "KILN_AWS_EXTRA_TAGS": "Team=ops,Cost=42"}
    s = settings.load(root, env)
    assert s.region == "eu-north-1" and s.copy_regions == ("us-east-1", "us-west-2")
    assert s.extra_tags == {"Team": "ops", "Cost": "42"} and s.instance_type == "t3.small"
    s = settings.load(root, env, {"region": "ap-south-1", "instance_type": None})
    assert s.region == "ap-south-1" and s.regions == ("ap-south-1", "us-east-1", "us-west-2")
    (tmp_path / "x").mkdir()
    assert settings.load(project(tmp_path / "x"), {"AWS_DEFAULT_REGION": "sa-east-1"}).region == "sa-east-1"


@pytest.mark.parametrize(("aws", "env", "cli", "where", "message"), [
    ('region = "mars-1"\n', {}, {}, "kiln.toml:4 [aws] region", "invalid AWS region 'mars-1'"),
    ("", {"KILN_AWS_REGION": "EU-WEST-1"}, {}, "KILN_AWS_REGION", "invalid AWS region 'EU-WEST-1'"),
    ("", {}, {"region": "nowhere"}, "--region", "invalid AWS region 'nowhere'"),
    ('share_accounts = ["12345"]\n', {}, {}, "[aws] share_accounts", "invalid AWS account id '12345'"),
    ('share_org_arns = ["arn:aws:iam::1:root"]\n', {}, {}, "share_org_arns", "invalid organisation ARN"),
    ('extra_tags = { "kiln:name" = "x" }\n', {}, {}, "extra_tags", "invalid tag key 'kiln:name'"),
    ('colour = "blue"\n', {}, {}, "kiln.toml:4 [aws] colour", "unknown setting"),
    ('copy_regions = "eu-west-1"\n', {"KILN_AWS_COPY_REGIONS": "x"}, {}, "KILN_AWS_COPY_REGIONS",
     "invalid AWS region"),
    ('ssm_prefix = "kiln/"\n', {}, {}, "ssm_prefix", "invalid SSM prefix"),
    ('catalog_bucket = "Bad_Bucket"\n', {}, {}, "catalog_bucket", "invalid S3 bucket name"),
    ('instance_type = 3\n', {}, {}, "instance_type", "must be a string"),
    ('ssh_interface = "private_ip"\n', {"KILN_AWS_SSH_INTERFACE": "public_dns"}, {}, "KILN_AWS_SSH_INTERFACE",
     "invalid ssh_interface 'public_dns'"),
])
def test_errors_name_where_the_value_came_from(tmp_path, aws, env, cli, where, message):
    with pytest.raises(ConfigError) as err:
        settings.load(project(tmp_path, aws), env, cli)
    assert where in err.value.message and message in err.value.message


def test_ssh_interface_defaults_to_public_and_follows_the_precedence(tmp_path):
    assert settings.load(project(tmp_path), {}).ssh_interface == "public_ip"
    (tmp_path / "p").mkdir()
    root = project(tmp_path / "p", 'ssh_interface = "private_ip"\n')
    assert settings.load(root, {}).ssh_interface == "private_ip"
    assert settings.load(root, {"KILN_AWS_SSH_INTERFACE": "public_ip"}).ssh_interface == "public_ip"
