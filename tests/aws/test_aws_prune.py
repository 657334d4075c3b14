"""Retention on AWS: never an AMI on a channel, in a launch template, under an instance, named by SSM or shared —
in every region a record lists, configured or not."""

import boto3
import pytest

from pipeline.catalog import Artifact
from tests.aws.helpers import invoke, kiln_env
from tests.aws.test_aws_api import shared_catalog

pytestmark = pytest.mark.aws
RECORDED = ("us-east-1", "eu-west-1", "ap-south-1")  # ap-south-1: a copy region of an earlier configuration
RUN = "20260101T000000Z-0a1b2c"  # the bake that registered them, long ago


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
                                                   {"Key": "kiln:version", "Value": version},
                                                   {"Key": "kiln:run-id", "Value": RUN}])
    return ami


def two_versions(cat) -> list[str]:
    """Two verified base versions, an AMI of each in every recorded region: prune --keep 1 lets the first go."""
    versions = []
    for i in range(2):
        version = cat.begin_bake(name="base", parent=None, fingerprint=f"sha256:{i:064d}", git_commit="c",
                                 git_dirty=False, run_id="r", log_dir="/l")
        for region in RECORDED:
            cat.add_artifact("base", version, Artifact(target="aws", id=registered(region, "base", version),
                                                       region=region))
        cat.set_status("base", version, "verified")
        versions.append(version)
    return versions


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
    versions = two_versions(cat)
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


def test_prune_keeps_an_ami_shared_with_another_account(aws, tmp_path):
    env = kiln_env(tmp_path / "home")
    cat = shared_catalog()
    old, _new = two_versions(cat)
    shared = cat.get("base", old).artifacts[1]  # eu-west-1: sharing counts in every region
    boto3.client("ec2", region_name=shared.region).modify_image_attribute(
        ImageId=shared.id, LaunchPermission={"Add": [{"UserId": "444455556666"}]})
    dry = invoke("prune", "--target", "aws", "--keep", "1", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert f"keep base@{old}: in use (shared with 444455556666)" in dry.stdout
    assert {r.status for r in cat.versions("base")} == {"verified"}


def test_a_region_that_refuses_the_deregistration_stops_neither_the_others_nor_the_record(aws, tmp_path,
                                                                                          monkeypatch):
    """AWS failing one region's DeregisterImage (in-process, in front of real clients): the other regions are
    deregistered, the version is marked deleted (no verified record names a gone AMI), the error names what is
    left, and the janitor removes it once AWS accepts it."""
    from botocore.exceptions import ClientError

    from pipeline.config import default_paths
    from pipeline.errors import CloudError
    from pipeline.targets.aws import AwsTarget
    from pipeline.upkeep.prune import plan

    for key, value in kiln_env(tmp_path / "home").items():
        if key.startswith("KILN_"):
            monkeypatch.setenv(key, value)
    target = AwsTarget(default_paths())
    cat = shared_catalog()
    old, _new = two_versions(cat)
    gone = {a.region: a.id for a in cat.get("base", old).artifacts}

    def refuse(**_kwargs):
        raise ClientError({"Error": {"Code": "InternalError"}, "ResponseMetadata": {"HTTPStatusCode": 500}},
                          "DeregisterImage")
    target.account.client("ec2", "eu-west-1").meta.events.register("before-call.ec2.DeregisterImage", refuse)
    doomed = [d for d in plan(cat, keep=1, in_use=target.in_use(cat), target="aws") if d.delete]
    with pytest.raises(CloudError) as err:
        target.delete(cat, doomed)
    assert f"FAILED to deregister eu-west-1 {gone['eu-west-1']} of base@{old}: InternalError" in str(err.value)
    assert f"deregistered ap-south-1 {gone['ap-south-1']}" in str(err.value)
    assert "janitor" in err.value.hint
    assert cat.get("base", old).status == "deleted"
    left = {r: {i["ImageId"] for i in boto3.client("ec2", region_name=r).describe_images(Owners=["self"])["Images"]}
            for r in RECORDED}
    assert [r for r in RECORDED if gone[r] in left[r]] == ["eu-west-1"]
    done = invoke("janitor", "--target", "aws", "--older-than", "0", env=kiln_env(tmp_path / "home"))
    assert done.returncode == 0, done.stderr
    assert f"removed eu-west-1 image {gone['eu-west-1']}" in done.stdout
