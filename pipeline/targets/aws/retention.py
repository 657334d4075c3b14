"""Retention on AWS: what still uses an AMI, and deregistering the AMIs prune let go.

An AMI is in use while a launch template version, an Auto Scaling launch
configuration, a running or stopped instance, or any SSM parameter names it, or
while it is shared with another account, an organisation or the public (their
launch templates and instances cannot be seen from here: remove the launch
permission to let it go) — the one rule prune and the janitor both apply, but
for sharing, which only prune weighs: the janitor's AMIs are failed, interrupted
or unrecorded ones no catalog or SSM parameter ever offered (or deleted ones,
whose sharing prune weighed already), and Kiln shares every AMI it registers
with ``[aws] share_accounts``, so keeping shared ones would keep all of them.
Deregistering an AMI never deletes its snapshots on AWS: Kiln deletes them too,
in every region the record lists.

A version is marked deleted before its first AMI goes, and every region is tried
even when one fails: a failure never leaves a ``verified`` record naming an AMI
that is gone [AWS refusing or failing one region's deregistration]. What could
not be removed is named in the error; the janitor removes it on a later run,
since the catalog no longer keeps it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from pipeline.catalog import Catalog
from pipeline.errors import CloudError
from pipeline.targets.aws import account as aws
from pipeline.upkeep.prune import Decision


def in_use(account: aws.Account, regions: Iterable[str], *, leaving: Collection[str] = (),
           sharing: Collection[str] = ()) -> dict[str, str]:
    """AMIs something still points at in ``regions`` (every region a record lists, not only the configured
    ones): launch template versions, launch configurations, running or stopped instances (but those in
    ``leaving``, which the janitor terminates first), SSM parameters — every page of each — and launch
    permissions for other accounts on the AMIs in ``sharing`` (the ones prune could delete: one call each)."""
    used: dict[str, str] = {}
    for region in regions:
        ec2 = account.client("ec2", region)
        for page in ec2.get_paginator("describe_launch_templates").paginate():
            for lt in page["LaunchTemplates"]:
                for versions in ec2.get_paginator("describe_launch_template_versions").paginate(
                        LaunchTemplateId=lt["LaunchTemplateId"]):
                    for version in versions["LaunchTemplateVersions"]:
                        ami = version.get("LaunchTemplateData", {}).get("ImageId")
                        if ami:
                            used[ami] = f"launch template {lt['LaunchTemplateName']} v{version['VersionNumber']}"
        for page in ec2.get_paginator("describe_instances").paginate(Filters=[
                {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]):
            for inst in (i for res in page["Reservations"] for i in res["Instances"]):
                if inst["InstanceId"] not in leaving:
                    used[inst["ImageId"]] = f"instance {inst['InstanceId']} ({inst['State']['Name']})"
        scaling = account.client("autoscaling", region)
        for page in scaling.get_paginator("describe_launch_configurations").paginate():
            for conf in page["LaunchConfigurations"]:
                used.setdefault(conf["ImageId"], f"launch configuration {conf['LaunchConfigurationName']}")
        for ami, whom in shared(ec2, set(sharing) - set(used)).items():
            used.setdefault(ami, f"shared with {whom}")
        ssm = account.client("ssm", region)
        for page in ssm.get_paginator("get_parameters_by_path").paginate(Path="/", Recursive=True):
            for param in page["Parameters"]:
                if str(param.get("Value", "")).startswith("ami-"):
                    used.setdefault(param["Value"], f"SSM parameter {param['Name']}")
    return used


def shared(ec2: Any, among: Collection[str]) -> dict[str, str]:
    """Kiln's AMIs in one region, of those in ``among``, that other accounts may launch: {AMI: who}, public
    ones included."""
    found: dict[str, str] = {}
    if not among:
        return found
    for page in ec2.get_paginator("describe_images").paginate(Owners=["self"], Filters=[
            {"Name": "tag-key", "Values": ["kiln:name"]}]):
        for image in (i for i in page["Images"] if i["ImageId"] in among):
            perms = ec2.describe_image_attribute(ImageId=image["ImageId"],
                                                 Attribute="launchPermission")["LaunchPermissions"]
            whom = sorted({p.get("UserId") or p.get("OrganizationArn") or p.get("OrganizationalUnitArn")
                           or ("the public" if p.get("Group") == "all" else "") for p in perms} - {""})
            if image.get("Public") and "the public" not in whom:
                whom.append("the public")
            if whom:
                found[image["ImageId"]] = ", ".join(whom)
    return found


def delete(account: aws.Account, catalog: Catalog, doomed: Sequence[Decision]) -> list[str]:
    """Deregister the AMIs of the versions that go, in every region, with their snapshots.

    Each version is marked deleted first; a region that fails does not stop the others, and the failures
    are raised together at the end, after every version was tried.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    lines, failed = [], []
    for d in doomed:
        catalog.mark_deleted(d.name, d.version, "pruned")
        for art in d.artifacts:
            if art.target != "aws" or not art.region:
                continue
            try:
                lines.append(_deregister(account.client("ec2", art.region), art.region, art.id, d.ref))
            except (ClientError, BotoCoreError) as exc:
                code = exc.response.get("Error", {}).get("Code", "error") if isinstance(exc, ClientError) else exc
                failed.append(f"FAILED to deregister {art.region} {art.id} of {d.ref}: {code}")
    if failed:
        raise CloudError("prune: " + "\n".join(lines + failed),
                         hint="those versions are marked deleted and no longer offered; invoke janitor --target aws "
                              "removes what is left once AWS accepts it")
    return lines


def _deregister(ec2: Any, region: str, ami: str, ref: str) -> str:
    """One AMI and its snapshots; gone already is fine (an earlier prune that failed half-way)."""
    images = ec2.describe_images(Filters=[{"Name": "image-id", "Values": [ami]}])["Images"]
    snapshots = aws.snapshots_of(images[0]) if images else []
    if images:
        ec2.deregister_image(ImageId=ami)
    for snap in snapshots:
        ec2.delete_snapshot(SnapshotId=snap)
    return f"deregistered {region} {ami} and {len(snapshots)} snapshot(s) of {ref}"
