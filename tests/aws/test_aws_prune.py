"""Retention on AWS: never an AMI on a channel, in a launch template, under an instance or named by SSM."""

import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from pipeline.catalog import Catalog
from pipeline.catalog.s3_store import S3Store
from tests.conftest import ROOT

pytestmark = pytest.mark.aws
INVOKE = str(Path(sys.executable).parent / "invoke")


def invoke(*args, env):
    return subprocess.run([INVOKE, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)


def test_prune_on_aws_keeps_what_is_in_use_and_deletes_the_rest(aws, tmp_path):
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="kiln-catalog")
    env = {**os.environ, "KILN_HOME": str(tmp_path), "KILN_AWS_REGION": "us-east-1",
           "KILN_AWS_COPY_REGIONS": "eu-west-1", "KILN_AWS_CATALOG_BUCKET": "kiln-catalog"}
    for i in range(6):
        done = invoke("bake", "base", "--target", "aws", *(["--force"] if i else []), env=env)
        assert done.returncode == 0, done.stderr
    cat = Catalog(S3Store(boto3.client("s3", region_name="us-east-1"), "kiln-catalog", "kiln/catalog.json"))
    recs = cat.versions("base")
    ami = {r.version: {a.region: a.id for a in r.artifacts} for r in recs}
    v = [r.version for r in recs]
    assert invoke("promote", f"base@{v[0]}", "--channel", "prod", "--target", "aws", env=env).returncode == 0
    ec2 = boto3.client("ec2", region_name="us-east-1")
    ec2.create_launch_template(LaunchTemplateName="web", LaunchTemplateData={"ImageId": ami[v[1]]["us-east-1"]})
    inst = ec2.run_instances(ImageId=ami[v[2]]["us-east-1"], MinCount=1, MaxCount=1)["Instances"][0]
    ec2.stop_instances(InstanceIds=[inst["InstanceId"]])
    boto3.client("ssm", region_name="eu-west-1").put_parameter(Name="/team/web/ami", Value=ami[v[3]]["eu-west-1"],
                                                               Type="String", DataType="aws:ec2:image")
    dry = invoke("prune", "--target", "aws", "--keep", "1", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert lines[0] == f"would delete base@{v[4]}"
    why = {ln.split(":")[0].split("@")[1]: ln for ln in lines[1:]}
    assert "on channel prod" in why[v[0]]
    assert "launch template web" in why[v[1]]
    assert "instance " in why[v[2]] and "stopped" in why[v[2]]
    assert "SSM parameter /team/web/ami" in why[v[3]]
    assert "among the newest 1 verified" in why[v[5]] and "SSM parameter /kiln/images/base/latest" in why[v[5]]
    done = invoke("prune", "--target", "aws", "--keep", "1", env=env)
    assert done.returncode == 0, done.stderr
    for region in ("us-east-1", "eu-west-1"):
        client = boto3.client("ec2", region_name=region)
        left = {i["ImageId"] for i in client.describe_images(Owners=["self"])["Images"]}
        assert ami[v[4]][region] not in left
        assert all(ami[x][region] in left for x in (v[0], v[1], v[2], v[3], v[5]))
        snaps = client.describe_snapshots(OwnerIds=["self"], Filters=[
            {"Name": "tag:kiln:version", "Values": [v[4]]}])["Snapshots"]
        assert snaps == []
    statuses = {r.version: r.status for r in cat.versions("base")}
    assert statuses[v[4]] == "deleted" and list(statuses.values()).count("deleted") == 1
