"""What the aws tests share: how they run Kiln, and how they look into the emulated account."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3

from tests.conftest import ROOT

INVOKE = str(Path(sys.executable).parent / "invoke")
REGIONS = ("us-east-1", "eu-west-1")
SHARE = "111122223333"
BUCKET = "kiln-catalog"
PROVENANCE = ("kiln:name", "kiln:version", "kiln:parent", "kiln:parent-ami", "kiln:bake-key", "kiln:git-commit",
              "kiln:git-dirty", "kiln:run-id", "kiln:kiln-version", "kiln:catalog")


def kiln_env(home: Path, **extra: str) -> dict[str, str]:
    """Kiln's environment for a bake on the aws target: two regions, sharing, tags, the S3 catalog."""
    import os

    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
    return {**os.environ, "KILN_HOME": str(home), "KILN_AWS_REGION": "us-east-1", "KILN_AWS_COPY_REGIONS": "eu-west-1",
            "KILN_AWS_SHARE_ACCOUNTS": SHARE, "KILN_AWS_CATALOG_BUCKET": BUCKET, "KILN_AWS_EXTRA_TAGS": "Team=platform",
            **extra}


def invoke(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([INVOKE, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def start(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """``invoke ARGS`` started in the background (``finish`` collects it)."""
    return subprocess.Popen([INVOKE, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL)


def finish(running: subprocess.Popen[str], timeout: float) -> subprocess.CompletedProcess[str]:
    out, err = running.communicate(timeout=timeout)
    return subprocess.CompletedProcess(running.args, running.returncode, out, err)


def leases_held() -> list[str]:
    """The bake lease objects beside the S3 catalog document."""
    s3 = boto3.client("s3", region_name="us-east-1")
    found = s3.list_objects_v2(Bucket=BUCKET, Prefix="kiln/catalog.json.leases/")
    return [o["Key"] for o in found.get("Contents", [])]


def ec2(region: str = "us-east-1") -> Any:
    return boto3.client("ec2", region_name=region)


def catalog_doc() -> dict[str, Any]:
    body = boto3.client("s3", region_name="us-east-1").get_object(Bucket=BUCKET, Key="kiln/catalog.json")
    return json.loads(body["Body"].read())


def tags_of(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def check_provenance(img: dict[str, Any]) -> dict[str, str]:
    """Every region's AMI of an exported image: named, tagged (snapshots too), shared; {region: AMI}."""
    amis = {a["region"]: a["id"] for a in img["artifacts"] if a["target"] == "aws"}
    assert set(amis) == set(REGIONS)
    catalog_id = dict(catalog_doc()["state"]["tables"]["meta"])["catalog_id"]
    for region, ami in amis.items():
        [image] = ec2(region).describe_images(ImageIds=[ami])["Images"]
        assert image["Name"] == f"{img['name']}-{img['version']}"
        tags = tags_of(image)
        assert all(k in tags for k in PROVENANCE), tags
        assert tags["kiln:version"] == img["version"] and tags["Team"] == "platform"
        assert tags["kiln:bake-key"] == img["fingerprint"] and tags["kiln:catalog"] == catalog_id
        snapshots = [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if "Ebs" in m]
        assert snapshots
        for snap in ec2(region).describe_snapshots(SnapshotIds=snapshots)["Snapshots"]:
            assert tags_of(snap)["kiln:version"] == img["version"]
        perms = ec2(region).describe_image_attribute(ImageId=ami, Attribute="launchPermission")
        assert {"UserId": SHARE} in perms["LaunchPermissions"]
    return amis


def nothing_left() -> None:
    """No instance running, no key pair, no security group but the VPCs' defaults, in any region."""
    for region in REGIONS:
        states = {i["State"]["Name"] for r in ec2(region).describe_instances()["Reservations"] for i in r["Instances"]}
        assert states <= {"terminated"}, states
        assert ec2(region).describe_key_pairs()["KeyPairs"] == []
        assert {g["GroupName"] for g in ec2(region).describe_security_groups()["SecurityGroups"]} == {"default"}
