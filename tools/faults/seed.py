"""What the world group's account holds before each case: a team's state after two weekly bakes.

Two verified ``app`` versions (v1 on ``prod``, v2 ``latest``), each with an AMI
and its snapshot in both regions, tagged as a bake tags them; the S3 catalog
document recording them; SSM's parameters published where the catalog says.
"""

from __future__ import annotations

from typing import Any

from tools.faults.world import BUCKET, KEY, PARAM, REGIONS

OLD_RUNS = ("20261101T020000Z-0a1d0d", "20261108T020000Z-0b2e0e")
SOURCE = "ami-0debian12new00002"  # one of Debian's AMIs the emulator is seeded with


def seed(world: Any) -> None:
    """Fill ``world``'s fresh account; its versions and AMIs are kept on it for the checks."""
    from pipeline.catalog import Artifact, Catalog
    from pipeline.catalog.s3_store import S3Store

    world.client("s3").create_bucket(Bucket=BUCKET)
    cat = Catalog(S3Store(world.client("s3"), BUCKET, KEY))
    identity = cat.identity()
    for n, run in enumerate(OLD_RUNS):
        version = cat.begin_bake(name="app", parent=None, fingerprint=f"sha256:{n:064d}", git_commit="c",
                                 git_dirty=False, run_id=run, log_dir="/l", version=f"2026.11{n + 1:02d}.020000")
        world.amis[version] = register(world, version, run, identity)
        for region, ami in world.amis[version].items():
            cat.add_artifact("app", version, Artifact(target="aws", id=ami, region=region))
        cat.set_status("app", version, "verified")
        world.versions.append(version)
    cat.promote("app", world.versions[0], "prod")
    for channel, version in (("latest", world.versions[1]), ("prod", world.versions[0])):
        for region in REGIONS:
            world.client("ssm", region).put_parameter(Name=PARAM.format(channel=channel), Type="String",
                                                      Value=world.amis[version][region], Overwrite=True)


def register(world: Any, version: str, run: str, identity: str) -> dict[str, str]:
    """An AMI of ``app@version`` in every region, with its snapshot, tagged as a bake tags them."""
    ec2 = world.client("ec2", REGIONS[0])
    inst = ec2.run_instances(ImageId=SOURCE, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    amis = {REGIONS[0]: ec2.create_image(InstanceId=inst, Name=f"app-{version}")["ImageId"]}
    ec2.terminate_instances(InstanceIds=[inst])
    for region in REGIONS[1:]:
        amis[region] = world.client("ec2", region).copy_image(SourceImageId=amis[REGIONS[0]],
                                                              SourceRegion=REGIONS[0], Name=f"app-{version}")["ImageId"]
    tags = [{"Key": k, "Value": v} for k, v in {"kiln:name": "app", "kiln:version": version, "kiln:run-id": run,
                                                 "kiln:catalog": identity}.items()]
    for region, ami in amis.items():
        client = world.client("ec2", region)
        image = client.describe_images(ImageIds=[ami])["Images"][0]
        snaps = [m["Ebs"]["SnapshotId"] for m in image.get("BlockDeviceMappings", []) if "Ebs" in m]
        client.create_tags(Resources=[ami, *snaps], Tags=tags)
    return amis
