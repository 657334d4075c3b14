"""Retention on AWS: what still uses an AMI, and deregistering the AMIs prune let go.

An AMI is in use while a launch template version, an Auto Scaling launch
configuration, a running or stopped instance, or any SSM parameter names it —
the one rule prune and the janitor both apply. Deregistering an AMI never deletes its
snapshots on AWS: Kiln deletes them too, in every region the record lists.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from pipeline.catalog import Catalog
from pipeline.prune import Decision
from pipeline.targets.aws import account as aws


def in_use(account: aws.Account, regions: Iterable[str], *, leaving: Collection[str] = ()) -> dict[str, str]:
    """AMIs something still points at in ``regions`` (every region a record lists, not only the configured
    ones): launch template versions, launch configurations, running or stopped instances (but those in
    ``leaving``, which the janitor terminates first), SSM parameters — every page of each."""
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
        ssm = account.client("ssm", region)
        for page in ssm.get_paginator("get_parameters_by_path").paginate(Path="/", Recursive=True):
            for param in page["Parameters"]:
                if str(param.get("Value", "")).startswith("ami-"):
                    used.setdefault(param["Value"], f"SSM parameter {param['Name']}")
    return used


def delete(account: aws.Account, catalog: Catalog, doomed: Sequence[Decision]) -> list[str]:
    """Deregister the AMIs of the versions that go, in every region, with their snapshots; mark them deleted."""
    lines = []
    for d in doomed:
        for art in d.artifacts:
            if art.target != "aws" or not art.region:
                continue
            ec2 = account.client("ec2", art.region)
            images = ec2.describe_images(Filters=[{"Name": "image-id", "Values": [art.id]}])["Images"]
            snapshots = aws.snapshots_of(images[0]) if images else []
            if images:
                ec2.deregister_image(ImageId=art.id)
            for snap in snapshots:
                ec2.delete_snapshot(SnapshotId=snap)
            lines.append(f"deregistered {art.region} {art.id} and {len(snapshots)} snapshot(s) of {d.ref}")
        catalog.mark_deleted(d.name, d.version, "pruned")
    return lines
