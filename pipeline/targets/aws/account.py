"""The AWS account as Kiln sees it: sessions, credentials, endpoints, AMIs, tags and SSM parameters.

Credentials come only from boto3's standard chain (environment, profile,
instance role); Kiln never reads them itself, never passes them on the command
line and never writes them anywhere. Endpoints follow the standard
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>`` variables (boto3 honours
them; the EC2 one is passed on to Packer's ``custom_endpoint_ec2``), which is
how Kiln is pointed at LocalStack or a moto server.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pipeline.errors import KilnError
from pipeline.targets.aws.settings import AwsSettings

TAG_PREFIX = "kiln:"
API_ONLY_ENV = "KILN_AWS_API_ONLY"


def endpoint(service: str, env: Mapping[str, str] | None = None) -> str | None:
    """The endpoint override for ``service`` from the standard variables, if any."""
    env = os.environ if env is None else env
    return env.get(f"AWS_ENDPOINT_URL_{service.upper()}") or env.get("AWS_ENDPOINT_URL") or None


def api_only(env: Mapping[str, str] | None = None) -> bool:
    """``KILN_AWS_API_ONLY=1``: a switch for Kiln's own fast tests against an API emulator.

    Nothing is provisioned or verified over SSH, so the images are recorded
    ``unverified``: never ``latest``, never promoted, never a parent. No endpoint
    is ever taken to mean this by itself.
    """
    env = os.environ if env is None else env
    return env.get(API_ONLY_ENV, "") == "1"


@dataclass
class Account:
    """boto3 clients for the configured regions, created on first use."""

    settings: AwsSettings

    def __post_init__(self) -> None:
        import boto3

        self._session = boto3.session.Session()
        self._clients: dict[tuple[str, str], Any] = {}

    def client(self, service: str, region: str | None = None) -> Any:
        """A client for ``service`` in ``region`` (default: the build region)."""
        key = (service, region or self.settings.region)
        if key not in self._clients:
            self._clients[key] = self._session.client(service, region_name=key[1])
        return self._clients[key]

    def identity(self) -> dict[str, str]:
        """Who the credentials belong to; one clear error when there are none or they are refused."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            found = self.client("sts").get_caller_identity()
        except NoCredentialsError:
            raise KilnError("no AWS credentials found",
                            hint="set AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run on an instance "
                                 "with a role; nothing was launched") from None
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise KilnError(f"AWS refused the credentials ({code})",
                            hint="check the profile or keys in use; nothing was launched") from None
        except BotoCoreError as exc:
            raise KilnError(f"cannot reach AWS to check the credentials: {exc}",
                            hint="check the network and AWS_ENDPOINT_URL; nothing was launched") from None
        return {"account": found["Account"], "arn": found["Arn"]}

    def find_source_ami(self) -> dict[str, Any]:
        """The newest AMI matching the configured owners and name pattern (Debian's bookworm by default)."""
        images = self.client("ec2").describe_images(
            Owners=list(self.settings.source_ami_owners),
            Filters=[{"Name": "name", "Values": [self.settings.source_ami_name]},
                     {"Name": "state", "Values": ["available"]},
                     {"Name": "architecture", "Values": ["x86_64"]}])["Images"]
        if not images:
            raise KilnError(f"no AMI named {self.settings.source_ami_name!r} owned by "
                            f"{', '.join(self.settings.source_ami_owners)} in {self.settings.region}",
                            hint="check [aws] source_ami_name / source_ami_owners and the region")
        return max(images, key=lambda i: (i.get("CreationDate", ""), i["ImageId"]))

    def images_tagged(self, region: str, tags: Mapping[str, str]) -> list[dict[str, Any]]:
        """Our AMIs in ``region`` carrying all ``tags``."""
        filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]
        return self.client("ec2", region).describe_images(Owners=["self"], Filters=filters)["Images"]

    def tag(self, region: str, resources: Iterable[str], tags: Mapping[str, str]) -> None:
        """Put ``tags`` on ``resources`` (AMIs, snapshots, …) in ``region``."""
        ids = list(resources)
        if ids:
            self.client("ec2", region).create_tags(Resources=ids, Tags=tag_list(tags))


class AwsPlace(Protocol):
    """What the aws target's builder and verification need of it."""

    settings: AwsSettings
    api_only: bool

    @property
    def account(self) -> Account:
        """boto3 clients for the configured regions."""
        ...

    @property
    def ssh_cidr(self) -> str:
        """Who may reach build and test instances on port 22: this machine (``KILN_AWS_SSH_CIDR`` overrides)."""
        ...

    def layer_tags(self, run: Any, layer: Any) -> dict[str, str]:
        """Provenance tags of a layer's AMIs and snapshots."""
        ...


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """boto3's tag shape."""
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def tags_of(resource: Mapping[str, Any]) -> dict[str, str]:
    """A described resource's tags as a dict."""
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def snapshots_of(image: Mapping[str, Any]) -> list[str]:
    """The EBS snapshots behind an AMI."""
    return [m["Ebs"]["SnapshotId"] for m in image.get("BlockDeviceMappings", [])
            if m.get("Ebs", {}).get("SnapshotId")]


def parse_artifact_id(artifact_id: str) -> dict[str, str]:
    """Packer's amazon artifact id ``region:ami-…,region:ami-…`` → {region: ami}."""
    out = {}
    for part in artifact_id.split(","):
        region, _, ami = part.strip().partition(":")
        if not ami.startswith("ami-"):
            raise KilnError(f"unexpected AMI artifact id from Packer: {artifact_id!r}")
        out[region] = ami
    return out


def provenance_tags(*, name: str, version: str, parent_ref: str, parent_ami: str, bake_key: str, git_commit: str,
                    git_dirty: bool, run_id: str, kiln_version: str, catalog_id: str,
                    extra: Mapping[str, str]) -> dict[str, str]:
    """The tags every AMI and snapshot of a bake carries, in every region; ``kiln:catalog`` names the catalog
    that records it, so a janitor reading another catalog never takes it for its own leftover."""
    tags = dict(extra)
    tags.update({
        "Name": f"{name}-{version}",
        f"{TAG_PREFIX}name": name,
        f"{TAG_PREFIX}version": version,
        f"{TAG_PREFIX}parent": parent_ref,
        f"{TAG_PREFIX}parent-ami": parent_ami,
        f"{TAG_PREFIX}bake-key": bake_key,
        f"{TAG_PREFIX}git-commit": git_commit,
        f"{TAG_PREFIX}git-dirty": str(git_dirty).lower(),
        f"{TAG_PREFIX}run-id": run_id,
        f"{TAG_PREFIX}kiln-version": kiln_version,
        f"{TAG_PREFIX}catalog": catalog_id,
    })
    return tags
