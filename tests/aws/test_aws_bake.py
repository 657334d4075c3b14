"""`invoke bake app --target aws` against the emulated account: Debian's Packer, real HTTP, real boto3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from pipeline.catalog import validate
from tests.conftest import ROOT

pytestmark = pytest.mark.aws
INVOKE = str(Path(sys.executable).parent / "invoke")
REGIONS = ("us-east-1", "eu-west-1")
SHARE = "111122223333"
PROVENANCE = ("kiln:name", "kiln:version", "kiln:parent", "kiln:parent-ami", "kiln:bake-key", "kiln:git-commit",
              "kiln:git-dirty", "kiln:run-id", "kiln:kiln-version")


@pytest.fixture
def kiln_env(aws, tmp_path):
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="kiln-catalog")
    return {**os.environ, "KILN_HOME": str(tmp_path / "home"), "KILN_AWS_REGION": "us-east-1",
            "KILN_AWS_COPY_REGIONS": "eu-west-1", "KILN_AWS_SHARE_ACCOUNTS": SHARE,
            "KILN_AWS_CATALOG_BUCKET": "kiln-catalog", "KILN_AWS_EXTRA_TAGS": "Team=platform"}


def invoke(*args, env, timeout=600):
    return subprocess.run([INVOKE, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def ec2(region="us-east-1"):
    return boto3.client("ec2", region_name=region)


def catalog_doc():
    body = boto3.client("s3", region_name="us-east-1").get_object(Bucket="kiln-catalog", Key="kiln/catalog.json")
    return json.loads(body["Body"].read())


def test_bake_app_on_aws_builds_copies_shares_tags_publishes(kiln_env):
    done = invoke("bake", "app", "--target", "aws", env=kiln_env)
    assert done.returncode == 0, done.stdout + done.stderr
    doc = catalog_doc()
    validate(doc)
    by_name = {i["name"]: i for i in doc["images"]}
    base, app = by_name["base"], by_name["app"]
    assert base["status"] == app["status"] == "verified"
    assert app["parent"] == {"name": "base", "version": base["version"]}
    for img in (base, app):
        amis = {a["region"]: a["id"] for a in img["artifacts"] if a["target"] == "aws"}
        assert set(amis) == set(REGIONS)
        for region, ami in amis.items():
            [image] = ec2(region).describe_images(ImageIds=[ami])["Images"]
            assert image["Name"] == f"{img['name']}-{img['version']}"
            tags = {t["Key"]: t["Value"] for t in image["Tags"]}
            assert all(k in tags for k in PROVENANCE), tags
            assert tags["kiln:version"] == img["version"] and tags["Team"] == "platform"
            assert tags["kiln:bake-key"] == img["fingerprint"]
            snapshots = [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if "Ebs" in m]
            assert snapshots
            for snap in ec2(region).describe_snapshots(SnapshotIds=snapshots)["Snapshots"]:
                assert {t["Key"]: t["Value"] for t in snap["Tags"]}["kiln:version"] == img["version"]
            perms = ec2(region).describe_image_attribute(ImageId=ami, Attribute="launchPermission")
            assert {"UserId": SHARE} in perms["LaunchPermissions"]
            param = boto3.client("ssm", region_name=region).get_parameter(Name=f"/kiln/images/{img['name']}/latest")
            assert param["Parameter"]["Value"] == ami
    def tag(ami, key):
        return {t["Key"]: t["Value"] for t in ec2().describe_images(ImageIds=[ami])["Images"][0]["Tags"]}[key]

    base_ami = next(a["id"] for a in base["artifacts"] if a["region"] == "us-east-1")
    app_ami = next(a["id"] for a in app["artifacts"] if a["region"] == "us-east-1")
    assert tag(base_ami, "kiln:parent-ami") == "ami-0debian12new00002"  # the newest Debian AMI
    assert tag(app_ami, "kiln:parent-ami") == base_ami
    assert tag(app_ami, "kiln:parent") == f"base@{base['version']}"
    resolved = invoke("catalog.resolve", "app", "--target", "aws", "--region", "eu-west-1", env=kiln_env)
    assert resolved.stdout.strip() == next(a["id"] for a in app["artifacts"] if a["region"] == "eu-west-1")
    # nothing left running or lying around
    for region in REGIONS:
        states = {i["State"]["Name"] for r in ec2(region).describe_instances()["Reservations"] for i in r["Instances"]}
        assert states <= {"terminated"}
        assert ec2(region).describe_key_pairs()["KeyPairs"] == []
        assert [g["GroupName"] for g in ec2(region).describe_security_groups()["SecurityGroups"]] == ["default"]
    secret = kiln_env["AWS_SECRET_ACCESS_KEY"].encode()
    written = [p for p in Path(kiln_env["KILN_HOME"]).rglob("*") if p.is_file()]
    assert written and not [p for p in written if secret in p.read_bytes()]
    assert secret.decode() not in json.dumps(doc)
    plan = invoke("plan", "--all", "--target", "aws", env=kiln_env)
    assert plan.returncode == 0 and f"up to date: app {app['version']}" in plan.stdout, plan.stderr
    # and the second run is a no-op
    again = invoke("bake", "app", "--target", "aws", env=kiln_env)
    assert again.returncode == 0 and [ln.split()[3] for ln in again.stdout.splitlines()] == ["base", "app"]


def test_promote_publishes_the_channel_in_every_region(kiln_env):
    assert invoke("bake", "base", "--target", "aws", env=kiln_env).returncode == 0
    version = catalog_doc()["channels"]["base"]["latest"]
    done = invoke("promote", f"base@{version}", "--channel", "prod", "--target", "aws", env=kiln_env)
    assert done.returncode == 0, done.stderr
    for region in REGIONS:
        param = boto3.client("ssm", region_name=region).get_parameter(Name="/kiln/images/base/prod")["Parameter"]
        assert param["Value"].startswith("ami-") and param["DataType"] == "aws:ec2:image"
    revoked = invoke("revoke", f"base@{version}", "--reason", "drill", "--target", "aws", env=kiln_env)
    assert revoked.returncode == 0, revoked.stderr
    with pytest.raises(boto3.client("ssm", region_name="us-east-1").exceptions.ParameterNotFound):
        boto3.client("ssm", region_name="us-east-1").get_parameter(Name="/kiln/images/base/prod")


def test_missing_credentials_fail_before_anything_is_launched(kiln_env):
    env = {k: v for k, v in kiln_env.items() if not k.startswith("AWS_ACCESS") and not k.startswith("AWS_SECRET")}
    env.update({"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent"})
    done = invoke("bake", "app", "--target", "aws", env=env)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "kiln: error: no AWS credentials found — set AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run "
        "on an instance with a role; nothing was launched"]
    assert ec2().describe_instances()["Reservations"] == []


def amis_named(prefix, region="us-east-1"):
    return [i for i in ec2(region).describe_images(Owners=["self"])["Images"] if i["Name"].startswith(prefix)]


def test_a_retry_adopts_the_ami_its_killed_attempt_registered(kiln_env):
    from pipeline.catalog import Catalog
    from pipeline.catalog.s3_store import S3Store

    assert invoke("bake", "base", "--target", "aws", env=kiln_env).returncode == 0
    cat = Catalog(S3Store(boto3.client("s3", region_name="us-east-1"), "kiln-catalog", "kiln/catalog.json"))
    [rec] = cat.versions("base")
    # What a job killed after registration leaves: the AMIs exist, the catalog says interrupted.
    cat.set_status("base", rec.version, "interrupted", reason="job killed")
    done = invoke("bake", "base", "--target", "aws", env=kiln_env)
    assert done.returncode == 0, done.stderr
    assert "adopting the AMI a previous attempt registered" in done.stdout
    for region in REGIONS:
        assert len(amis_named("base-", region)) == 1
    [again] = cat.versions("base")
    assert again.version == rec.version and again.status == "verified"
    assert [h["to"] for h in cat.status_history("base", rec.version)] == [
        "building", "verified", "interrupted", "building", "verified"]


def test_a_retry_adopts_even_when_the_catalog_lost_the_record(kiln_env):
    assert invoke("bake", "base", "--target", "aws", env=kiln_env).returncode == 0
    version = catalog_doc()["channels"]["base"]["latest"]
    boto3.client("s3", region_name="us-east-1").delete_object(Bucket="kiln-catalog", Key="kiln/catalog.json")
    done = invoke("bake", "base", "--target", "aws", env=kiln_env)
    assert done.returncode == 0, done.stderr
    assert "adopting" in done.stdout
    assert catalog_doc()["channels"]["base"]["latest"] == version
    assert len(amis_named("base-")) == 1
