"""The janitor: find and remove what killed bakes left behind in the AWS account.

Every resource a bake creates carries Kiln's ``kiln:run-id`` tag (or, where
Packer cannot tag, a ``kiln-<run-id>`` name), and a run id starts with the
time the run began. The janitor looks in every configured region for
instances, key pairs, security groups, volumes, snapshots and AMIs of runs
older than ``--older-than`` (default 3 hours: longer than any bake, so a bake
running on another Jenkins agent right now is left alone) and removes them —
except AMIs the catalog records as verified or revoked, which are kept, and
snapshots still backing an AMI.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline import aws
from pipeline.errors import ConfigError

RUN_RE = re.compile(r"(\d{8}T\d{6}Z-[0-9a-f]{6})")
KEEP_STATUSES = ("verified", "revoked", "building")
ORDER = ("instance", "key-pair", "security-group", "volume", "image", "snapshot")


@dataclass(frozen=True)
class Leftover:
    """One resource a killed run left behind."""

    region: str
    kind: str
    id: str
    run_id: str
    detail: str = ""

    def describe(self) -> str:
        """One report line."""
        return f"{self.region} {self.kind} {self.id} (run {self.run_id}{', ' + self.detail if self.detail else ''})"


def parse_age(text: str) -> timedelta:
    """``3h`` / ``90m`` / ``2d`` / ``0`` → a timedelta."""
    match = re.fullmatch(r"(\d+)([smhd]?)", text.strip())
    if not match:
        raise ConfigError(f"invalid --older-than value {text!r}", hint="e.g. 3h, 90m, 2d or 0")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return timedelta(seconds=int(match.group(1)) * unit)


def run_started(run_id: str) -> datetime | None:
    """When a run began, from its id."""
    match = RUN_RE.search(run_id)
    if not match:
        return None
    return datetime.strptime(match.group(1)[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def _run_of(tags: Mapping[str, str], name: str = "") -> str | None:
    if tags.get("kiln:run-id"):
        return tags["kiln:run-id"]
    match = RUN_RE.search(name) if name.startswith("kiln-") else None
    return match.group(1) if match else None


def find(account: aws.Account, regions: Iterable[str], recorded: Mapping[tuple[str, str], str], *,
         older_than: timedelta, now: datetime | None = None) -> list[Leftover]:
    """Everything in ``regions`` that belongs to a Kiln run older than ``older_than`` and is not kept.

    ``recorded`` maps (image name, version) to its catalog status.
    """
    now = now or datetime.now(UTC)

    def old(run_id: str | None) -> bool:
        started = run_started(run_id or "")
        return started is not None and now - started >= older_than

    found: list[Leftover] = []
    for region in regions:
        ec2 = account.client("ec2", region)
        for res in ec2.describe_instances(Filters=[
                {"Name": "tag-key", "Values": ["kiln:run-id"]},
                {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}],
                )["Reservations"]:
            for inst in res["Instances"]:
                run = _run_of(aws.tags_of(inst))
                if old(run):
                    found.append(Leftover(region, "instance", inst["InstanceId"], run or "", inst["State"]["Name"]))
        for key in ec2.describe_key_pairs()["KeyPairs"]:
            run = _run_of(aws.tags_of(key), key["KeyName"])
            if old(run):
                found.append(Leftover(region, "key-pair", key["KeyName"], run or ""))
        for group in ec2.describe_security_groups()["SecurityGroups"]:
            run = _run_of(aws.tags_of(group), group["GroupName"])
            if group["GroupName"] != "default" and old(run):
                found.append(Leftover(region, "security-group", group["GroupId"], run or "", group["GroupName"]))
        for vol in ec2.describe_volumes(Filters=[{"Name": "tag-key", "Values": ["kiln:run-id"]},
                                                 {"Name": "status", "Values": ["available"]}])["Volumes"]:
            run = _run_of(aws.tags_of(vol))
            if old(run):
                found.append(Leftover(region, "volume", vol["VolumeId"], run or ""))
        images = ec2.describe_images(Owners=["self"])["Images"]
        backing: set[str] = set()  # snapshots of kept AMIs, or removed together with their AMI
        for image in images:
            tags = aws.tags_of(image)
            run = _run_of(tags)
            status = recorded.get((tags.get("kiln:name", ""), tags.get("kiln:version", "")))
            if tags.get("kiln:name") and status not in KEEP_STATUSES and old(run):
                found.append(Leftover(region, "image", image["ImageId"], run or "",
                                      f"{image.get('Name')}: {status or 'not in the catalog'}, with its snapshots"))
            backing.update(aws.snapshots_of(image))
        for snap in ec2.describe_snapshots(OwnerIds=["self"], Filters=[
                {"Name": "tag-key", "Values": ["kiln:run-id"]}])["Snapshots"]:
            run = _run_of(aws.tags_of(snap))
            if snap["SnapshotId"] not in backing and old(run):
                found.append(Leftover(region, "snapshot", snap["SnapshotId"], run or ""))
    return sorted(found, key=lambda item: (item.region, ORDER.index(item.kind), item.id))


def clean(account: aws.Account, leftovers: Sequence[Leftover]) -> list[str]:
    """Remove the leftovers (instances first, snapshots last); one report line each."""
    from botocore.exceptions import ClientError

    report = []
    by_region: dict[str, list[Leftover]] = {}
    for item in leftovers:
        by_region.setdefault(item.region, []).append(item)
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


def clean_local(runs: Path, *, older_than: timedelta, dry_run: bool, now: datetime | None = None) -> list[str]:
    """Scratch folders of local runs killed before their cleanup (SIGKILL, power loss), by run age."""
    import shutil

    now = now or datetime.now(UTC)
    lines = []
    for folder in sorted(runs.iterdir()) if runs.is_dir() else []:
        started = run_started(folder.name)
        if started is None or now - started < older_than:
            continue
        if not dry_run:
            shutil.rmtree(folder, ignore_errors=True)
        lines.append(f"{'would remove' if dry_run else 'removed'} {folder}")
    return lines or [f"janitor: nothing left behind in {runs}"]
