"""Retention on AWS: never an AMI on a channel, in a launch template, under an instance or named by SSM —
in every region a record lists, configured or not."""

import boto3
import pytest

from pipeline.catalog import Artifact
from tests.aws.helpers import invoke, kiln_env
from tests.aws.test_aws_api import shared_catalog

pytestmark = pytest.mark.aws
RECORDED = ("us-east-1", "eu-west-1", "ap-south-1")  # ap-south-1: a copy region of an earlier configuration


def registered(region: str, name: str, version: str) -> str:
    """An AMI (with its snapshot) as a bake leaves it, tagged with its version."""
    ec2 = boto3.client("ec2", region_name=region)
    inst = ec2.run_instances(ImageId="ami-0debian12new00002", MinCount=1, MaxCount=1)["Instances"][0] \
        if region == "us-east-1" else None
    if inst is None:
        source = boto3.client("ec2", region_name="us-east-1").describe_images(
            Filters=[{"Name": "tag:kiln:version", "Values": [version]}])["Images"][0]["ImageId"]
        ami = ec2.copy_image(SourceImageId=source, SourceRegion="us-east-1", Name=f"{name}-{version}")["ImageId"]
    else:
        ami = ec2.create_image(InstanceId=inst["InstanceId"], Name=f"{name}-{version}")["ImageId"]
        ec2.terminate_instances(InstanceIds=[inst["InstanceId"]])
    image = ec2.describe_images(ImageIds=[ami])["Images"][0]
    snaps = [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if "Ebs" in m]
    ec2.create_tags(Resources=[ami, *snaps], Tags=[{"Key": "kiln:name", "Value": name},
                                                   {"Key": "kiln:version", "Value": version}])
    return ami


def test_prune_on_aws_keeps_what_is_in_use_and_deletes_the_rest(aws, tmp_path):
    env = kiln_env(tmp_path / "home")
    cat = shared_catalog()
    v, ami = [], {}
    for i in range(6):
        version = cat.begin_bake(name="base", parent=None, fingerprint=f"sha256:{i:064d}", git_commit="c",
                                 git_dirty=False, run_id="r", log_dir="/l")
        ami[version] = {region: registered(region, "base", version) for region in RECORDED}
        for region, image in ami[version].items():
            cat.add_artifact("base", version, Artifact(target="aws", id=image, region=region))
        cat.set_status("base", version, "verified")
        v.append(version)
    assert invoke("promote", f"base@{v[0]}", "--channel", "prod", "--target", "aws", env=env).returncode == 0
    ec2 = boto3.client("ec2", region_name="us-east-1")
    ec2.create_launch_template(LaunchTemplateName="web", LaunchTemplateData={"ImageId": ami[v[1]]["us-east-1"]})
    inst = ec2.run_instances(ImageId=ami[v[2]]["us-east-1"], MinCount=1, MaxCount=1)["Instances"][0]
    ec2.stop_instances(InstanceIds=[inst["InstanceId"]])
    boto3.client("ssm", region_name="eu-west-1").put_parameter(Name="/team/web/ami", Value=ami[v[3]]["eu-west-1"],
                                                               Type="String", DataType="aws:ec2:image")
    # Only in a region that is no longer configured, and still in use there.
    boto3.client("ec2", region_name="ap-south-1").run_instances(ImageId=ami[v[4]]["ap-south-1"], MinCount=1,
                                                                MaxCount=1)
    dry = invoke("prune", "--target", "aws", "--keep", "1", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert lines[0] == "nothing to prune"
    why = {ln.split(":")[0].split("@")[1]: ln for ln in lines if ln.startswith("keep ")}
    assert "on channel prod" in why[v[0]]
    assert "launch template web" in why[v[1]]
    assert "instance " in why[v[2]] and "stopped" in why[v[2]]
    assert "SSM parameter /team/web/ami" in why[v[3]]
    assert "instance " in why[v[4]] and "running" in why[v[4]]
    assert "among the newest 1 verified" in why[v[5]]
    assert [ln for ln in lines if ln.startswith("would delete")] == []
    done = invoke("prune", "--target", "aws", "--keep", "1", env=env)
    assert done.returncode == 0, done.stderr
    for region in RECORDED:
        left = {i["ImageId"] for i in boto3.client("ec2", region_name=region).describe_images(
            Owners=["self"])["Images"]}
        assert all(ami[x][region] in left for x in v)
    assert {r.status for r in cat.versions("base")} == {"verified"}


def test_prune_deregisters_in_every_region_a_record_lists(aws, tmp_path):
    env = kiln_env(tmp_path / "home")
    cat = shared_catalog()
    versions = []
    for i in range(2):
        version = cat.begin_bake(name="base", parent=None, fingerprint=f"sha256:{i:064d}", git_commit="c",
                                 git_dirty=False, run_id="r", log_dir="/l")
        for region in RECORDED:
            cat.add_artifact("base", version, Artifact(target="aws", id=registered(region, "base", version),
                                                       region=region))
        cat.set_status("base", version, "verified")
        versions.append(version)
    old = {a.region: a.id for a in cat.get("base", versions[0]).artifacts}
    done = invoke("prune", "--target", "aws", "--keep", "1", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"delete base@{versions[0]}"
    for region in RECORDED:
        client = boto3.client("ec2", region_name=region)
        assert old[region] not in {i["ImageId"] for i in client.describe_images(Owners=["self"])["Images"]}
        assert client.describe_snapshots(OwnerIds=["self"], Filters=[
            {"Name": "tag:kiln:version", "Values": [versions[0]]}])["Snapshots"] == []
    assert [r.status for r in cat.versions("base")] == ["deleted", "verified"]
