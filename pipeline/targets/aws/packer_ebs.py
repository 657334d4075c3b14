"""The aws target's Packer builder: ``amazon-ebs.image`` on Debian's AMI or the parent's AMI.

The build instance gets a key pair of Kiln's own (``kiln-<run-id>-build-<image>``,
tagged), so the public half is known and the specs can check it is gone; the
key pair is deleted afterwards, whatever happens. The AMI is copied to every
extra region and shared as configured; Packer's manifest gives the AMI ids.
Against an AWS API emulator the ``amazon-ebs.emulator`` variant runs (no SSH:
an emulator's instances are not machines).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator, Mapping

from pipeline.bake.layer import Layer
from pipeline.bake.run import Run
from pipeline.packer import build as packer_build
from pipeline.targets.aws import account as aws


class PackerEbs(packer_build.PackerBuilder):
    """Packer's amazon-ebs builder."""

    template_sources = ("amazon-ebs.image",)

    def __init__(self, target: aws.AwsPlace) -> None:
        super().__init__(target)
        self.place = target

    def build(self, run: Run, layer: Layer) -> Mapping[str, str]:
        """Build and register the AMI; {region: AMI} from Packer's manifest."""
        target = self.place
        with build_key_pair(run, layer, target):
            output = packer_build.build(run, layer, only="amazon-ebs.emulator" if target.api_only else
                                        "amazon-ebs.image", variables=packer_variables(run, layer, target))
        return aws.parse_artifact_id(output.artifact_id)


def key_name(run: Run, layer: Layer) -> str:
    """The per-build key pair: ``kiln-<run-id>-build-<image>`` (the janitor finds it by name and tag)."""
    return f"kiln-{run.run_id}-build-{layer.spec.name}"


def packer_variables(run: Run, layer: Layer, target: aws.AwsPlace) -> dict[str, object]:
    """Packer variables of an amazon-ebs build (checked against the templates before use)."""
    s = target.settings
    return {
        **packer_build.common_variables(run, layer),
        "ssh_username": s.ssh_username,
        "ssh_private_key_file": str(layer.scratch / "build-key"),
        "aws_ssh_keypair_name": key_name(run, layer),
        "aws_region": s.region,
        "aws_ami_regions": [r for r in s.regions if r != s.region],
        "aws_ami_users": list(s.share_accounts),
        "aws_instance_type": s.instance_type,
        "aws_subnet_filter": dict(s.subnet_filter),
        "aws_vpc_filter": dict(s.vpc_filter),
        "aws_iam_instance_profile": s.iam_instance_profile,
        "aws_kms_key_id": s.kms_key_id,
        "aws_tags": target.layer_tags(run, layer),
        "aws_run_tags": {"kiln:run-id": run.run_id, "kiln:name": layer.spec.name, "Name": f"kiln-build-{run.run_id}"},
        "aws_endpoint_ec2": aws.endpoint("ec2") or "",
        "aws_ssh_cidrs": [target.ssh_cidr],
        "aws_ssh_interface": s.ssh_interface,
    }


@contextlib.contextmanager
def build_key_pair(run: Run, layer: Layer, target: aws.AwsPlace) -> Iterator[None]:
    """Import a fresh key for the build instance; delete the key pair afterwards, whatever happens."""
    ec2 = target.account.client("ec2")
    key = layer.scratch / "build-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", key_name(run, layer), "-f", str(key)],
                   check=True, stdin=subprocess.DEVNULL, capture_output=True)
    (layer.log_dir / "build-key.pub").write_text(key.with_suffix(".pub").read_text())
    tags = aws.tag_list({"kiln:run-id": run.run_id, "kiln:name": layer.spec.name})
    ec2.import_key_pair(KeyName=key_name(run, layer), PublicKeyMaterial=key.with_suffix(".pub").read_bytes(),
                        TagSpecifications=[{"ResourceType": "key-pair", "Tags": tags}])
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            ec2.delete_key_pair(KeyName=key_name(run, layer))
