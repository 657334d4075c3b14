"""The janitor finds what killed runs left, by run-id tags, in every region — and leaves the rest alone."""

import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from pipeline.upkeep import janitor
from tests.conftest import ROOT

pytestmark = pytest.mark.aws
INVOKE = str(Path(sys.executable).parent / "invoke")
OLD, NEW = "20261101T020000Z-0a1d0d", "29991231T235959Z-fe0e0e"
HELD = "20261101T010000Z-0b2b2b"  # an old run still baking on another machine: its lease is live


def tags(run, **extra):
    return [{"Key": "kiln:run-id", "Value": run}, *({"Key": k, "Value": v} for k, v in extra.items())]


def leave_behind(region, run):
    ec2 = boto3.client("ec2", region_name=region)
    inst = ec2.run_instances(ImageId="ami-0debian12new00002", MinCount=1, MaxCount=1, InstanceType="t3.micro",
                             TagSpecifications=[{"ResourceType": "instance", "Tags": tags(run)}])["Instances"][0]
    ec2.create_key_pair(KeyName=f"kiln-{run}")
    sg = ec2.create_security_group(GroupName=f"kiln-verify-{run}-app", Description="x",
                                   TagSpecifications=[{"ResourceType": "security-group", "Tags": tags(run)}])
    vol = ec2.create_volume(AvailabilityZone=f"{region}a", Size=8,
                            TagSpecifications=[{"ResourceType": "volume", "Tags": tags(run)}])
    return inst["InstanceId"], sg["GroupId"], vol["VolumeId"]


def registered(region, run, name, version, catalog=""):
    ec2 = boto3.client("ec2", region_name=region)
    inst = ec2.run_instances(ImageId="ami-0debian12new00002", MinCount=1, MaxCount=1)["Instances"][0]
    ami = ec2.create_image(InstanceId=inst["InstanceId"], Name=f"{name}-{version}")["ImageId"]
    ec2.terminate_instances(InstanceIds=[inst["InstanceId"]])
    image = ec2.describe_images(ImageIds=[ami])["Images"][0]
    snaps = [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if "Ebs" in m]
    extra = {"kiln:name": name, "kiln:version": version, **({"kiln:catalog": catalog} if catalog else {})}
    ec2.create_tags(Resources=[ami, *snaps], Tags=tags(run, **extra))
    return ami, snaps


def record(cat, name, version, ami, status, run=OLD):
    from pipeline.catalog import Artifact

    cat.begin_bake(name=name, parent=None, fingerprint="sha256:" + "0" * 64, git_commit="c", git_dirty=False,
                   run_id=run, log_dir="/l", version=version)
    cat.add_artifact(name, version, Artifact(target="aws", id=ami, region="us-east-1"))
    cat.set_status(name, version, status)


def images():
    ec2 = boto3.client("ec2", region_name="us-east-1")
    return {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]}


def test_parse_age_and_run_time():
    assert janitor.parse_age("3h").total_seconds() == 10800
    assert janitor.parse_age("0").total_seconds() == 0
    assert janitor.run_started(OLD).isoformat() == "2026-11-01T02:00:00+00:00"
    assert janitor.run_started("kiln-verify-" + OLD + "-app") is not None
    with pytest.raises(Exception, match="invalid --older-than"):
        janitor.parse_age("soon")


def test_janitor_cleans_old_runs_everywhere_and_keeps_the_rest(aws, tmp_path):
    old = {r: leave_behind(r, OLD) for r in ("us-east-1", "eu-west-1")}
    new = leave_behind("us-east-1", NEW)
    env = {**os.environ, "KILN_HOME": str(tmp_path), "KILN_AWS_REGION": "us-east-1",
           "KILN_AWS_COPY_REGIONS": "eu-west-1"}
    from pipeline.catalog import Catalog

    with Catalog.open(tmp_path / "catalog.db") as cat:
        # An AMI of this catalog that it never recorded (killed between register and record): it goes.
        orphan_ami, orphan_snaps = registered("us-east-1", OLD, "app", "2026.1101.020000", cat.identity())
        # One recorded verified, one of another catalog (no kiln:catalog of this one), one failed that SSM
        # still serves: all three stay.
        kept_ami, kept_snaps = registered("us-east-1", OLD, "base", "2026.1101.010000")
        foreign_ami, _ = registered("us-east-1", OLD, "app", "2026.1101.030000", "another-catalog")
        served_ami, _ = registered("us-east-1", OLD, "app", "2026.1101.040000", cat.identity())
        record(cat, "base", "2026.1101.010000", kept_ami, "verified")
        record(cat, "app", "2026.1101.040000", served_ami, "failed")
    boto3.client("ssm", region_name="eu-west-1").put_parameter(Name="/kiln/images/app/prod", Value=served_ami,
                                                               Type="String")
    before = (tmp_path / "catalog.db").read_bytes()
    dry = subprocess.run([INVOKE, "janitor", "--target", "aws", "--dry-run"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    for region, (inst, sg, vol) in old.items():
        for thing in (inst, sg, vol, f"kiln-{OLD}"):
            assert any(region in ln and thing in ln for ln in lines), (thing, lines)
    assert any(orphan_ami in ln for ln in lines)
    assert not any(kept in ln for kept in (kept_ami, foreign_ami, served_ami, NEW) for ln in lines)
    assert all(ln.startswith("would remove ") for ln in lines)
    done = subprocess.run([INVOKE, "janitor", "--target", "aws"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "FAILED" not in done.stdout and len(done.stdout.splitlines()) == len(lines)
    for region, (inst, sg, vol) in old.items():
        ec2 = boto3.client("ec2", region_name=region)
        state = ec2.describe_instances(InstanceIds=[inst])["Reservations"][0]["Instances"][0]["State"]["Name"]
        assert state == "terminated"
        assert ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [f"kiln-{OLD}"]}])["KeyPairs"] == []
        assert sg not in {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
        assert vol not in {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]}
    ec2 = boto3.client("ec2", region_name="us-east-1")
    assert orphan_ami not in images() and {kept_ami, foreign_ami, served_ami} <= images()
    snaps = {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    assert not set(orphan_snaps) & snaps and set(kept_snaps) <= snaps
    new_inst = new[0]
    assert ec2.describe_instances(InstanceIds=[new_inst])["Reservations"][0]["Instances"][0]["State"]["Name"] == \
        "running"
    assert (tmp_path / "catalog.db").read_bytes() == before
    again = subprocess.run([INVOKE, "janitor", "--target", "aws"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=300)
    assert again.stdout.startswith("janitor: nothing left behind")


@pytest.mark.parametrize("home", ["missing", "empty"])
def test_janitor_refuses_a_catalog_that_knows_nothing_while_kiln_amis_exist(aws, tmp_path, home):
    """A laptop without catalog_bucket (no catalog, or an empty one) must not take every AMI for an orphan."""
    from pipeline.catalog import Catalog

    ami, _ = registered("us-east-1", OLD, "app", "2026.1101.020000", "the-teams-catalog")
    inst, sg, vol = leave_behind("us-east-1", OLD)
    if home == "empty":
        Catalog.open(tmp_path / "catalog.db").close()
    env = {**os.environ, "KILN_HOME": str(tmp_path), "KILN_AWS_REGION": "us-east-1"}
    for dry in (["--dry-run"], []):
        done = subprocess.run([INVOKE, "janitor", "--target", "aws", *dry], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode != 0 and done.stdout == ""
        assert len(done.stderr.strip().splitlines()) <= 2, done.stderr  # the error and its hint
        assert "refusing" in done.stderr and str(tmp_path / "catalog.db") in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    ec2 = boto3.client("ec2", region_name="us-east-1")
    assert ami in images()
    assert ec2.describe_instances(InstanceIds=[inst])["Reservations"][0]["Instances"][0]["State"]["Name"] == "running"
    assert vol in {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]}
    assert (tmp_path / "catalog.db").exists() == (home == "empty")


def test_a_building_record_no_live_bake_holds_is_marked_interrupted_and_its_ami_goes(aws, tmp_path):
    """A bake killed after registering (SIGKILL: its record stays building, its lease expires) used to keep
    its AMI forever. A building record whose lease is live — another machine's bake — stays, and so does its
    AMI."""
    from pipeline.catalog import Catalog, Lease

    env = {**os.environ, "KILN_HOME": str(tmp_path), "KILN_AWS_REGION": "us-east-1"}
    with Catalog.open(tmp_path / "catalog.db") as cat:
        left_ami, _ = registered("us-east-1", OLD, "app", "2026.1101.020000", cat.identity())
        held_ami, _ = registered("us-east-1", HELD, "db", "2026.1101.020000", cat.identity())
        record(cat, "app", "2026.1101.020000", left_ami, "building")
        record(cat, "db", "2026.1101.020000", held_ami, "building", run=HELD)
        cat.leases.claim(Lease(image="db", key="sha256:" + "0" * 64, target="aws", actor="ci", host="agent-7",
                               run_id=HELD), 600)
    dry = subprocess.run([INVOKE, "janitor", "--target", "aws", "--dry-run"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, dry.stderr
    assert "would mark app@2026.1101.020000 interrupted" in dry.stdout and left_ami in dry.stdout, dry.stdout
    assert held_ami not in dry.stdout and "db@" not in dry.stdout
    done = subprocess.run([INVOKE, "janitor", "--target", "aws"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert left_ami not in images() and held_ami in images()
    with Catalog.open(tmp_path / "catalog.db") as cat:
        assert [cat.get(n, "2026.1101.020000").status for n in ("app", "db")] == ["interrupted", "building"]
