"""A bake's AMIs: provenance tags and sharing in every region, and the AMIs an earlier attempt registered.

Every AMI and snapshot, in every region including copies, carries the
provenance tags. A retry of a bake whose AMI was already registered (a timeout
after registration, a killed job) finds it by its ``kiln:bake-key`` tag and
adopts it instead of failing on the duplicate name.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline import __version__
from pipeline.bake.layer import Git, Layer
from pipeline.bake.run import Run
from pipeline.catalog import Artifact
from pipeline.errors import BuildFailed
from pipeline.targets.aws import account as aws
from pipeline.targets.aws.settings import AwsSettings


def layer_tags(run: Run, layer: Layer, settings: AwsSettings) -> dict[str, str]:
    """Provenance tags of this layer's AMIs and snapshots."""
    return aws.provenance_tags(
        name=layer.spec.name, version=layer.version, parent_ref=layer.source.label, parent_ami=layer.source.location,
        bake_key=layer.inputs.key, git_commit=layer.git.commit, git_dirty=layer.git.dirty, run_id=run.run_id,
        kiln_version=__version__, catalog_id=run.catalog.identity(), extra=settings.extra_tags)


def register(account: aws.Account, amis: Mapping[str, str], tags: Mapping[str, str],
             ref: str) -> tuple[Artifact, ...]:
    """Tag every AMI and its snapshots, share them as configured; the artifacts, one per region."""
    settings = account.settings
    missing = [r for r in settings.regions if r not in amis]
    if missing:
        raise BuildFailed(f"{ref}: no AMI in {', '.join(missing)}", hint="check the copy to those regions")
    artifacts = []
    for region, ami in amis.items():
        ec2 = account.client("ec2", region)
        image = ec2.describe_images(ImageIds=[ami])["Images"][0]
        account.tag(region, [ami, *aws.snapshots_of(image)], tags)
        for key, grantees in (("UserId", settings.share_accounts), ("OrganizationArn", settings.share_org_arns)):
            if grantees:
                ec2.modify_image_attribute(ImageId=ami, LaunchPermission={"Add": [{key: g} for g in grantees]})
        artifacts.append(Artifact(target="aws", id=ami, region=region))
    return tuple(artifacts)


def adoptable(account: aws.Account, name: str, key: str) -> tuple[str, dict[str, str], Git] | None:
    """The version, {region: AMI} and git of AMIs an earlier attempt of this very bake registered."""
    settings = account.settings
    found = account.images_tagged(settings.region, {"kiln:name": name, "kiln:bake-key": key})
    found = [i for i in found if i.get("State") in ("available", "pending")]
    if not found:
        return None
    newest = aws.tags_of(max(found, key=lambda i: aws.tags_of(i).get("kiln:version", "")))
    version = newest["kiln:version"]
    amis = {}
    for region in settings.regions:
        same = account.images_tagged(region, {"kiln:name": name, "kiln:version": version})
        if same:
            amis[region] = same[0]["ImageId"]
    git = Git(newest.get("kiln:git-commit", "unknown"), newest.get("kiln:git-dirty", "true") == "true")
    return version, amis, git
