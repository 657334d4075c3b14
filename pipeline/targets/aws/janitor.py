"""The janitor on AWS: what killed bakes left behind in the account, found by run id, and removed.

Every resource a bake creates carries Kiln's ``kiln:run-id`` tag (or, where
Packer cannot tag, a ``kiln-<run-id>`` name). The janitor looks in every
configured region for instances, key pairs, security groups, volumes,
snapshots and AMIs of runs older than ``--older-than`` and removes them.

An AMI is the one thing a deployer may still run, so it goes only when all of
these hold (the fault each one survives in brackets):
- the catalog records it as failed, interrupted or deleted, or does not record
  it and its ``kiln:catalog`` tag names this very catalog [a laptop or a
  ``KILN_HOME`` reading another catalog: its AMIs are not this one's orphans];
- nothing uses it: an SSM parameter, a launch template version, a launch
  configuration or an instance, in any configured region — the rules retention
  applies but sharing, as ``retention`` says why [a catalog that lies: SSM still
  serving a version it marked failed];
- the catalog is there and holds records: against a missing or empty catalog
  the janitor refuses to run at all while Kiln AMIs exist [the S3 object deleted
  or emptied by hand, ``catalog_bucket`` unset].
Snapshots backing any AMI stay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.errors import CatalogError
from pipeline.targets.aws import account as aws
from pipeline.targets.aws import retention
from pipeline.targets.base import Leftover
from pipeline.upkeep.janitor import CatalogView, run_of, run_started

KEEP_STATUSES = ("verified", "revoked", "building")
ORDER = ("instance", "key-pair", "security-group", "volume", "image", "snapshot")


def leftover(region: str, kind: str, id_: str, run_id: str, detail: str = "") -> Leftover:
    """One resource of a killed run, as the janitor reports it."""
    text = f"{region} {kind} {id_} (run {run_id}{', ' + detail if detail else ''})"
    return Leftover(region, kind, id_, run_id, text)


def find(account: aws.Account, regions: Iterable[str], view: Callable[[], CatalogView], *,
         older_than: timedelta, now: datetime | None = None) -> list[Leftover]:
    """Everything in ``regions`` that belongs to a Kiln run older than ``older_than`` and is not kept.

    ``view()`` reads the catalog, once, and only when the account holds Kiln AMIs.
    """
    moment = now or datetime.now(UTC)
    regions = list(regions)

    def old(run_id: str | None) -> bool:
        started = run_started(run_id or "")
        return started is not None and moment - started >= older_than

    images = {r: [i for i in account.client("ec2", r).describe_images(Owners=["self"])["Images"]
                  if aws.tags_of(i).get("kiln:name")] for r in regions}
    seen = view() if any(images.values()) else CatalogView("")
    if any(images.values()) and seen.blind:
        count = sum(len(found) for found in images.values())
        what = "is missing" if seen.missing else "records nothing"
        raise CatalogError(f"janitor: the catalog at {seen.where} {what}, but the account holds {count} Kiln "
                           "AMI(s); refusing to judge any of them",
                           hint="point Kiln at the catalog that recorded them ([aws] catalog_bucket, KILN_CATALOG), "
                                "or restore it: invoke catalog.import FILE")
    found: list[Leftover] = []
    for region in regions:
        ec2 = account.client("ec2", region)
        found += [item for item in _machines(ec2, region) if old(item.run_id)]
        found += [item for item in _images(ec2, region, images[region], seen) if old(item.run_id)]
    if any(item.kind == "image" for item in found):
        used = retention.in_use(account, regions, leaving={i.id for i in found if i.kind == "instance"})
        found = [item for item in found if item.kind != "image" or item.id not in used]
    return sorted(found, key=lambda item: (item.place, ORDER.index(item.kind), item.id))


def _machines(ec2: Any, region: str) -> list[Leftover]:
    """Instances, key pairs, security groups and volumes with a run id."""
    found = []
    for res in ec2.describe_instances(Filters=[
            {"Name": "tag-key", "Values": ["kiln:run-id"]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])["Reservations"]:
        for inst in res["Instances"]:
            found.append(leftover(region, "instance", inst["InstanceId"], run_of(aws.tags_of(inst)),
                                  inst["State"]["Name"]))
    for key in ec2.describe_key_pairs()["KeyPairs"]:
        found.append(leftover(region, "key-pair", key["KeyName"], run_of(aws.tags_of(key), key["KeyName"])))
    for group in ec2.describe_security_groups()["SecurityGroups"]:
        if group["GroupName"] != "default":
            found.append(leftover(region, "security-group", group["GroupId"],
                                  run_of(aws.tags_of(group), group["GroupName"]), group["GroupName"]))
    for vol in ec2.describe_volumes(Filters=[{"Name": "tag-key", "Values": ["kiln:run-id"]},
                                             {"Name": "status", "Values": ["available"]}])["Volumes"]:
        found.append(leftover(region, "volume", vol["VolumeId"], run_of(aws.tags_of(vol))))
    return found


def _images(ec2: Any, region: str, images: Sequence[Mapping[str, Any]], view: CatalogView) -> list[Leftover]:
    """Kiln AMIs this catalog lets go (with their snapshots), and snapshots that back no AMI at all."""
    found = []
    backing: set[str] = set()  # snapshots of every AMI: kept, or removed together with their AMI
    for image in ec2.describe_images(Owners=["self"])["Images"]:
        backing.update(aws.snapshots_of(image))
    for image in images:
        tags = aws.tags_of(image)
        status = view.statuses.get((tags["kiln:name"], tags.get("kiln:version", "")))
        ours = status is not None or (bool(view.catalog_id) and tags.get("kiln:catalog") == view.catalog_id)
        if ours and status not in KEEP_STATUSES:
            found.append(leftover(region, "image", image["ImageId"], run_of(tags),
                                  f"{image.get('Name')}: {status or 'not in the catalog'}, with its snapshots"))
    for snap in ec2.describe_snapshots(OwnerIds=["self"], Filters=[
            {"Name": "tag-key", "Values": ["kiln:run-id"]}])["Snapshots"]:
        if snap["SnapshotId"] not in backing:
            found.append(leftover(region, "snapshot", snap["SnapshotId"], run_of(aws.tags_of(snap))))
    return found


def clean(account: aws.Account, leftovers: Sequence[Leftover]) -> list[str]:
    """Remove the leftovers (instances first, snapshots last); one report line each."""
    from botocore.exceptions import ClientError

    report = []
    by_region: dict[str, list[Leftover]] = {}
    for item in leftovers:
        by_region.setdefault(item.place, []).append(item)
    for region, items in by_region.items():
        ec2 = account.client("ec2", region)
        instances = [i.id for i in items if i.kind == "instance"]
        if instances:
            ec2.terminate_instances(InstanceIds=instances)
            ec2.get_waiter("instance_terminated").wait(InstanceIds=instances,
                                                       WaiterConfig={"Delay": 2, "MaxAttempts": 150})
        for item in sorted(items, key=lambda i: ORDER.index(i.kind)):
            try:
                _remove(ec2, item)
                report.append(f"removed {item.describe()}")
            except ClientError as exc:
                report.append(f"FAILED to remove {item.describe()}: {exc.response.get('Error', {}).get('Code')}")
    return report


def _remove(ec2: Any, item: Leftover) -> None:
    if item.kind == "key-pair":
        ec2.delete_key_pair(KeyName=item.id)
    elif item.kind == "security-group":
        ec2.delete_security_group(GroupId=item.id)
    elif item.kind == "volume":
        ec2.delete_volume(VolumeId=item.id)
    elif item.kind == "image":
        snapshots = aws.snapshots_of(ec2.describe_images(ImageIds=[item.id])["Images"][0])
        ec2.deregister_image(ImageId=item.id)
        for snap in snapshots:
            ec2.delete_snapshot(SnapshotId=snap)
    elif item.kind == "snapshot":
        ec2.delete_snapshot(SnapshotId=item.id)
