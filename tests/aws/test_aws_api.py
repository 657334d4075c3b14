"""The AWS-facing half of a bake, fast: Kiln's API-only test switch (``KILN_AWS_API_ONLY=1``).

Packer's ``amazon-ebs.emulator`` variant builds against the emulator with no
SSH at all, so nothing is provisioned or verified: these tests prove the API
work (AMIs, copies, tags, sharing, test instances, adoption, the S3 catalog)
and that such an image is recorded ``unverified`` — never ``latest``, never
published, never promoted. ``test_aws_chain.py`` proves the SSH half on the twin.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from pipeline.catalog import Catalog, validate
from pipeline.catalog.s3_store import S3Store
from tests.aws.helpers import BUCKET, REGIONS, catalog_doc, check_provenance, ec2, invoke, kiln_env, nothing_left

pytestmark = pytest.mark.aws


@pytest.fixture
def api_env(aws, tmp_path):
    return kiln_env(tmp_path / "home", KILN_AWS_API_ONLY="1", KILN_AWS_SSH_CIDR="127.0.0.1/32")


def shared_catalog() -> Catalog:
    return Catalog(S3Store(boto3.client("s3", region_name="us-east-1"), BUCKET, "kiln/catalog.json"))


def test_an_api_only_bake_registers_copies_shares_and_tags_but_verifies_nothing(api_env):
    done = invoke("bake", "base", "--target", "aws", env=api_env)
    assert done.returncode == 0, done.stdout + done.stderr
    row = done.stdout.splitlines()[-1].split()  # the summary: image, version, status, …
    assert row[0] == "base" and row[2] == "unverified"
    doc = catalog_doc()
    validate(doc)
    [base] = doc["images"]
    assert base["status"] == "unverified" and "base" not in doc["channels"]
    check_provenance(base)
    report = json.loads(Path(base["report"]).read_text())
    assert report["status"] == "unverified" and report["specs"]["ok"] is False and "KILN_AWS_API_ONLY" in \
        report["specs"]["skipped"]
    for region in REGIONS:  # nothing unverified is ever published
        with pytest.raises(boto3.client("ssm", region_name=region).exceptions.ParameterNotFound):
            boto3.client("ssm", region_name=region).get_parameter(Name="/kiln/images/base/latest")
    nothing_left()
    secret = api_env["AWS_SECRET_ACCESS_KEY"].encode()
    written = [p for p in Path(api_env["KILN_HOME"]).rglob("*") if p.is_file()]
    assert written and not [p for p in written if secret in p.read_bytes()]
    assert secret.decode() not in json.dumps(doc)
    promote = invoke("promote", f"base@{base['version']}", "--channel", "prod", "--target", "aws", env=api_env)
    assert promote.returncode == 1 and "it is unverified" in promote.stderr
    plan = invoke("plan", "base", "--target", "aws", env=api_env)
    assert f"bake: base — no verified version (base@{base['version']} is unverified)" in plan.stdout
    child = invoke("bake", "app", "--target", "aws", env=api_env)  # an unverified base is never a parent
    assert child.returncode == 1 and "no verified base AMI" in child.stderr


def test_missing_credentials_fail_before_anything_is_launched(api_env):
    env = {k: v for k, v in api_env.items() if not k.startswith("AWS_ACCESS") and not k.startswith("AWS_SECRET")}
    env.update({"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent"})
    done = invoke("bake", "app", "--target", "aws", env=env)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "kiln: error: no AWS credentials found — set AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run "
        "on an instance with a role; nothing was launched"]
    assert ec2().describe_instances()["Reservations"] == []


def amis_named(prefix, region="us-east-1"):
    return [i for i in ec2(region).describe_images(Owners=["self"])["Images"] if i["Name"].startswith(prefix)]


def test_a_retry_adopts_the_ami_its_killed_attempt_registered(api_env):
    assert invoke("bake", "base", "--target", "aws", env=api_env).returncode == 0
    cat = shared_catalog()
    [rec] = cat.versions("base")
    # What a job killed after registration leaves: the AMIs exist, the catalog says interrupted.
    cat.set_status("base", rec.version, "interrupted", reason="job killed")
    done = invoke("bake", "base", "--target", "aws", env=api_env)
    assert done.returncode == 0, done.stderr
    assert "adopting the AMI a previous attempt registered" in done.stdout
    for region in REGIONS:
        assert len(amis_named("base-", region)) == 1
    [again] = cat.versions("base")
    assert again.version == rec.version and again.status == "unverified"
    assert [h["to"] for h in cat.status_history("base", rec.version)] == [
        "building", "unverified", "interrupted", "building", "unverified"]


def test_a_retry_adopts_even_when_the_catalog_lost_the_record(api_env):
    assert invoke("bake", "base", "--target", "aws", env=api_env).returncode == 0
    [first] = catalog_doc()["images"]
    boto3.client("s3", region_name="us-east-1").delete_object(Bucket=BUCKET, Key="kiln/catalog.json")
    done = invoke("bake", "base", "--target", "aws", env=api_env)
    assert done.returncode == 0, done.stderr
    assert "adopting" in done.stdout
    [again] = catalog_doc()["images"]
    assert again["version"] == first["version"] and again["git"] == first["git"]
    assert len(amis_named("base-")) == 1


def app_to_publish(api_env, monkeypatch):
    """us-east-1's latest on an old AMI; a new verified app version with an AMI in each region (not yet
    published); the aws target and its catalog."""
    from pipeline.catalog import Artifact
    from pipeline.config import default_paths
    from pipeline.targets.aws import AwsTarget

    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name="/kiln/images/app/latest", Value="ami-0old00000000000001", Type="String", DataType="aws:ec2:image")
    for key, value in api_env.items():
        if key.startswith("KILN_"):
            monkeypatch.setenv(key, value)
    target = AwsTarget(default_paths())
    cat = target.open_catalog()
    v = cat.begin_bake(name="app", parent=None, fingerprint="sha256:" + "a" * 64, git_commit="c", git_dirty=False,
                       run_id="r", log_dir="/l")
    for region in REGIONS:
        cat.add_artifact("app", v, Artifact(target="aws", id=f"ami-0new{region[:2]}0000000001", region=region))
    cat.set_status("app", v, "verified")
    return cat, v, target


def test_publishing_is_all_or_nothing(api_env, monkeypatch):
    """An SSM error in the second region puts the first back: deployers never see regions disagree."""

    ssm = {r: boto3.client("ssm", region_name=r) for r in REGIONS}
    cat, v, target = app_to_publish(api_env, monkeypatch)

    def refuse(**_kwargs):
        raise RuntimeError("SSM is down in eu-west-1")

    target.account.client("ssm", "eu-west-1").meta.events.register("before-call.ssm.PutParameter", refuse)
    with pytest.raises(RuntimeError, match="SSM is down"):
        target.publish(cat, ["app"])
    assert ssm["us-east-1"].get_parameter(Name="/kiln/images/app/latest")["Parameter"]["Value"] == \
        "ami-0old00000000000001"
    with pytest.raises(ssm["eu-west-1"].exceptions.ParameterNotFound):
        ssm["eu-west-1"].get_parameter(Name="/kiln/images/app/latest")


def test_throttling_then_a_failed_undo_is_one_line_naming_every_regions_final_value(api_env, monkeypatch):
    """SSM throttles in the second region, and putting the first back fails too: nothing is silent."""
    from botocore.exceptions import ClientError

    from pipeline.errors import CloudError

    ssm = boto3.client("ssm", region_name="us-east-1")
    cat, v, target = app_to_publish(api_env, monkeypatch)

    def throttle(**_kwargs):
        raise ClientError({"Error": {"Code": "ThrottlingException"}, "ResponseMetadata": {"HTTPStatusCode": 400}},
                          "PutParameter")

    # Regions are published in order: eu-west-1 lands, us-east-1 throttles, and taking eu-west-1 back fails.
    target.account.client("ssm", "us-east-1").meta.events.register("before-call.ssm.PutParameter", throttle)
    target.account.client("ssm", "eu-west-1").meta.events.register("before-call.ssm.DeleteParameter", throttle)
    with pytest.raises(CloudError) as failed:
        target.publish(cat, ["app"])
    message = failed.value.message
    assert message.startswith("ssm: cannot publish the channels (ThrottlingException); undo failed: "), message
    assert message.endswith("undo failed: eu-west-1 /kiln/images/app/latest left at ami-0neweu0000000001 (should be "
                            "absent: undo (ThrottlingException))"), message  # us-east-1 was put back: not named
    assert ssm.get_parameter(Name="/kiln/images/app/latest")["Parameter"]["Value"] == "ami-0old00000000000001"
